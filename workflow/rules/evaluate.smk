rule transcribe:
    input:
        manifest=dag.PATHS["manifest"],
        model=dag.PATHS["model"],
        artifact=dag.PATHS["artifact"],
    output:
        hypotheses=dag.PATHS["hypotheses"],
        run=dag.PATHS["run"],
    params:
        decoding=PARAMS["decoding"],
        timing=PARAMS["timing"],
        options=lambda wildcards: PARAMS["backends"][wildcards.backend].get("options", {}),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/transcribe/{dataset}/{model}/{backend}/{precision}.log",
    threads: PARAMS["timing"]["threads"]
    resources:
        timing_slot=1,
    shell:
        script("transcribe")
        + " --dataset {wildcards.dataset} --model {wildcards.model} --backend {wildcards.backend}"
        + " --precision {wildcards.precision} --manifest {input.manifest} --model-dir {input.model}"
        + " --artifact {input.artifact} --hypotheses {output.hypotheses} --run {output.run} --log {log}"


rule score:
    input:
        hypotheses=dag.PATHS["hypotheses"],
        run=dag.PATHS["run"],
    output:
        metrics=dag.PATHS["metrics"],
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/score/{dataset}/{model}/{backend}/{precision}.log",
    shell:
        script("score") + " --hypotheses {input.hypotheses} --run {input.run} --out {output.metrics} --log {log}"
