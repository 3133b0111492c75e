rule build_artifact:
    input:
        model=dag.PATHS["model"],
    output:
        artifact=directory(dag.PATHS["artifact"]),
    params:
        options=lambda wildcards: PARAMS["backends"][wildcards.backend].get("options", {}),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/build_artifact/{model}/{backend}/{precision}.log",
    shell:
        script("build_artifact")
        + " --model-dir {input.model} --model {wildcards.model} --backend {wildcards.backend}"
        + " --precision {wildcards.precision} --out {output.artifact} --log {log}"
