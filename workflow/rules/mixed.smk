rule sensitivity:
    input:
        model=dag.PATHS["model"],
        calibration=dag.PATHS["calibration"],
    output:
        record=dag.PATHS["sensitivity"],
        plots=[dag.PATHS["sensitivity_plot"].replace("{fmt}", fmt) for fmt in PARAMS["report"]["plot_formats"]],
    params:
        sensitivity=canonical(PARAMS["sensitivity"]),
        decoding=canonical(PARAMS["decoding"]),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/sensitivity/{model}/{scheme}.log",
    threads: machine_cores(PARAMS["timing"]["threads"])  # untimed; every core, as the export check
    shell:
        script("sensitivity")
        + " --model-dir {input.model} --model {wildcards.model} --scheme {wildcards.scheme}"
        + " --calibration {input.calibration} --out {output.record} --plots {output.plots} --log {log}"
