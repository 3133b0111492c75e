# Each cell runs two passes. The accuracy pass (every utterance once, batched, untimed) runs beside other
# jobs on accuracy.threads cores each; the timing pass claims every core Snakemake was given, so that
# nothing else runs while it measures.


def cell_options(wildcards):
    return canonical(PARAMS["backends"][wildcards.backend].get("options", {}))


def pass_command(which, manifest, rows, run):
    return (
        script("transcribe")
        + f" --pass {which} --dataset {{wildcards.dataset}} --model {{wildcards.model}}"
        + " --backend {wildcards.backend} --precision {wildcards.precision}"
        + f" --manifest {{input.{manifest}}} --model-dir {{input.model}} --artifact {{input.artifact}}"
        + f" --rows {{output.{rows}}} --run {{output.{run}}} --log {{log}}"
    )


rule accuracy:
    input:
        manifest=dag.PATHS["manifest"],
        model=dag.PATHS["model"],
        artifact=dag.PATHS["artifact"],
    output:
        hypotheses=dag.PATHS["hypotheses"],
        run=dag.PATHS["accuracy_run"],
    params:
        decoding=canonical(PARAMS["decoding"]),
        accuracy=canonical(PARAMS["accuracy"]),
        threads=lambda wildcards: study_config.accuracy_threads(wildcards.backend, PARAMS),
        options=cell_options,
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/accuracy/{dataset}/{model}/{backend}/{precision}.log",
    threads: lambda wildcards: study_config.accuracy_threads(wildcards.backend, PARAMS)
    shell:
        pass_command("accuracy", "manifest", "hypotheses", "run")


rule timing:
    input:
        manifest=dag.PATHS["timing_manifest"],
        model=dag.PATHS["model"],
        artifact=dag.PATHS["artifact"],
    output:
        timings=dag.PATHS["timings"],
        run=dag.PATHS["timing_run"],
    params:
        decoding=canonical(PARAMS["decoding"]),
        timing=canonical(PARAMS["timing"]),
        throughput_batch=PARAMS["accuracy"]["batch_size"] if PARAMS["timing"]["throughput"] else None,
        options=cell_options,
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/timing/{dataset}/{model}/{backend}/{precision}.log",
    # Every core Snakemake has (--cores): the scheduler starts nothing else until the pass ends.
    threads: machine_cores(PARAMS["timing"]["threads"])
    shell:
        pass_command("timing", "manifest", "timings", "run")


rule score:
    input:
        hypotheses=dag.PATHS["hypotheses"],
        accuracy=dag.PATHS["accuracy_run"],
        timings=dag.PATHS["timings"],
        timing=dag.PATHS["timing_run"],
    output:
        metrics=dag.PATHS["metrics"],
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/score/{dataset}/{model}/{backend}/{precision}.log",
    shell:
        script("score")
        + " --hypotheses {input.hypotheses} --accuracy {input.accuracy} --timings {input.timings}"
        + " --timing {input.timing} --out {output.metrics} --log {log}"
