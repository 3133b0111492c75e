rule report:
    input:
        metrics=dag.metrics_paths(PARAMS),
        hypotheses=dag.hypotheses_paths(PARAMS),  # parity and WER intervals (same order as metrics)
    output:
        csv=dag.PATHS["summary_csv"],
        markdown=dag.PATHS["summary_md"],
        latex=dag.PATHS["summary_tex"],
        json=dag.PATHS["summary_json"],
        plots=dag.plot_paths(PARAMS),
    params:
        report=canonical(PARAMS["report"]),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/report.log",
    shell:
        script("report")
        + " --metrics {input.metrics} --hypotheses {input.hypotheses} --csv {output.csv} --markdown {output.markdown}"
        + " --latex {output.latex} --json {output.json} --plots {output.plots} --log {log}"
