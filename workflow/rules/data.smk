rule synthesize:
    output:
        corpus=directory(dag.PATHS["corpus"]),
    params:
        synthetic=canonical(PARAMS["synthetic"]),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/synthesize.log",
    shell:
        script("synthesize") + " --out {output.corpus} --log {log}"


def manifest_inputs(wildcards):
    synthetic = PARAMS["datasets"][wildcards.dataset]["source"] == "synthetic"
    return {"corpus": dag.PATHS["corpus"]} if synthetic else {}


def corpus_option(wildcards, input):
    return f" --corpus {input.corpus}" if "corpus" in input.keys() else ""


def timing_spec(wildcards):
    # not max_utterances: the timed subset is a prefix of the selection order, the same for any size
    return {k: v for k, v in PARAMS["datasets"][wildcards.dataset].items() if k != "max_utterances"}


def dataset_ids(hf):
    """The configured dataset ids read in place (hf=False) or from Hugging Face (hf=True), as a regex."""
    names = [name for name, spec in PARAMS["datasets"].items() if (spec["source"] == "hf") == hf]
    return "|".join(re.escape(name) for name in names) or "(?!)"  # (?!) matches nothing


rule manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=dag.PATHS["manifest"],
    params:
        spec=lambda wildcards: canonical(PARAMS["datasets"][wildcards.dataset]),
        librispeech=canonical(PARAMS["librispeech"]),
        corpus=corpus_option,
    wildcard_constraints:
        dataset=dataset_ids(hf=False),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/manifest/{dataset}.log",
    shell:
        script("make_manifest") + " --dataset {wildcards.dataset}{params.corpus} --out {output.manifest} --log {log}"


rule timing_manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=dag.PATHS["timing_manifest"],
    params:
        spec=lambda wildcards: canonical(timing_spec(wildcards)),
        utterances=PARAMS["timing"]["utterances"],
        librispeech=canonical(PARAMS["librispeech"]),
        corpus=corpus_option,
    wildcard_constraints:
        dataset=dataset_ids(hf=False),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/manifest/{dataset}.timing.log",
    shell:
        script("make_manifest")
        + " --dataset {wildcards.dataset} --timing{params.corpus} --out {output.manifest} --log {log}"


# Hugging Face datasets: the same two manifests, plus the chosen clips written out as FLAC files.
rule hf_manifest:
    output:
        manifest=dag.PATHS["manifest"],
        clips=directory(dag.PATHS["clips"]),
    params:
        spec=lambda wildcards: canonical(PARAMS["datasets"][wildcards.dataset]),
    wildcard_constraints:
        dataset=dataset_ids(hf=True),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/manifest/{dataset}.log",
    shell:
        script("make_manifest")
        + " --dataset {wildcards.dataset} --clips {output.clips} --out {output.manifest} --log {log}"


rule hf_timing_manifest:
    output:
        manifest=dag.PATHS["timing_manifest"],
        clips=directory(dag.PATHS["timing_clips"]),
    params:
        spec=lambda wildcards: canonical(timing_spec(wildcards)),
        utterances=PARAMS["timing"]["utterances"],
    wildcard_constraints:
        dataset=dataset_ids(hf=True),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/manifest/{dataset}.timing.log",
    shell:
        script("make_manifest")
        + " --dataset {wildcards.dataset} --timing --clips {output.clips} --out {output.manifest} --log {log}"


def calibration_inputs(wildcards):
    return {"corpus": dag.PATHS["corpus"]} if PARAMS["calibration"]["source"] == "synthetic" else {}


rule calibration_manifest:
    input:
        unpack(calibration_inputs),
    output:
        manifest=dag.PATHS["calibration"],
    params:
        # canonical text: rewriting params.yaml with keys in another order is not a change
        spec=canonical(PARAMS["calibration"]),
        librispeech=canonical(PARAMS["librispeech"]),
        corpus=lambda wildcards, input: f" --corpus {input.corpus}" if "corpus" in input.keys() else "",
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/manifest/calibration.log",
    shell:
        script("make_manifest") + " --calibration{params.corpus} --out {output.manifest} --log {log}"
