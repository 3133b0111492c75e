rule synthesize:
    output:
        corpus=directory(dag.PATHS["corpus"]),
    params:
        synthetic=PARAMS["synthetic"],
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/synthesize.log",
    shell:
        script("synthesize") + " --out {output.corpus} --log {log}"


def manifest_inputs(wildcards):
    synthetic = PARAMS["datasets"][wildcards.dataset]["source"] == "synthetic"
    return {"corpus": dag.PATHS["corpus"]} if synthetic else {}


rule manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=dag.PATHS["manifest"],
    params:
        spec=lambda wildcards: PARAMS["datasets"][wildcards.dataset],
        librispeech=PARAMS["librispeech"],
        corpus=lambda wildcards, input: f" --corpus {input.corpus}" if "corpus" in input.keys() else "",
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
        # not max_utterances: the timed subset is a prefix of the selection order, the same for any size
        spec=lambda wildcards: {k: v for k, v in PARAMS["datasets"][wildcards.dataset].items() if k != "max_utterances"},
        utterances=PARAMS["timing"]["utterances"],
        librispeech=PARAMS["librispeech"],
        corpus=lambda wildcards, input: f" --corpus {input.corpus}" if "corpus" in input.keys() else "",
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/manifest/{dataset}.timing.log",
    shell:
        script("make_manifest") + " --dataset {wildcards.dataset} --timing{params.corpus} --out {output.manifest} --log {log}"


def calibration_inputs(wildcards):
    return {"corpus": dag.PATHS["corpus"]} if PARAMS["calibration"]["source"] == "synthetic" else {}


rule calibration_manifest:
    input:
        unpack(calibration_inputs),
    output:
        manifest=dag.PATHS["calibration"],
    params:
        # canonical text: rewriting params.yaml with keys in another order is not a change
        spec=json.dumps(PARAMS["calibration"], sort_keys=True),
        librispeech=PARAMS["librispeech"],
        corpus=lambda wildcards, input: f" --corpus {input.corpus}" if "corpus" in input.keys() else "",
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/manifest/calibration.log",
    shell:
        script("make_manifest") + " --calibration{params.corpus} --out {output.manifest} --log {log}"
