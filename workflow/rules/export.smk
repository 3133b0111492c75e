rule export:
    input:
        model=dag.PATHS["model"],
        calibration=dag.PATHS["calibration"],
    output:
        export=directory(dag.PATHS["export"]),
    params:
        options=lambda wildcards: canonical(dag.export_options(PARAMS, wildcards.backend)),
        decoding=canonical(PARAMS["decoding"]),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/export/{model}/{backend}.log",
    threads: machine_cores(PARAMS["timing"]["threads"])  # the export check decodes on every core (untimed)
    shell:
        script("export_model")
        + " --model-dir {input.model} --model {wildcards.model} --backend {wildcards.backend}"
        + " --calibration {input.calibration} --out {output.export} --log {log}"


rule build_artifact:
    input:
        # the fetched model, or the backend's export of it (exporting backends such as onnxruntime)
        model=lambda wildcards: dag.artifact_source(PARAMS, wildcards.model, wildcards.backend),
        # a mixed precision chosen by the sensitivity pass reads its record (none for the others)
        sensitivity=lambda wildcards: dag.sensitivity_inputs(PARAMS, **wildcards),
    output:
        artifact=directory(dag.PATHS["artifact"]),
    params:
        options=lambda wildcards: canonical(PARAMS["backends"][wildcards.backend].get("options", {})),
        decoding=canonical(PARAMS["decoding"]),  # calibration decodes (int8_static)
        sensitivity=lambda wildcards, input: f" --sensitivity {input.sensitivity}" if input.sensitivity else "",
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/build_artifact/{model}/{backend}/{precision}.log",
    shell:
        script("build_artifact")
        + " --model-dir {input.model} --model {wildcards.model} --backend {wildcards.backend}"
        + " --precision {wildcards.precision} --out {output.artifact}{params.sensitivity} --log {log}"
