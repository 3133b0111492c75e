rule report:
    input:
        metrics=dag.metrics_paths(PARAMS),
        hypotheses=dag.hypotheses_paths(PARAMS),  # parity and WER intervals (same order as metrics)
    # report(): what `snakemake --report` (make report) puts in its HTML page, with captions from workflow/report/
    output:
        csv=report(dag.PATHS["summary_csv"], caption="../report/summary.rst", category="Tables"),
        markdown=dag.PATHS["summary_md"],
        latex=dag.PATHS["summary_tex"],
        json=dag.PATHS["summary_json"],
        plots=[
            report(plot, caption=f"../report/{Path(plot).stem}.rst", category="Figures", subcategory=Path(plot).stem)
            for plot in dag.plot_paths(PARAMS)
        ],
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
