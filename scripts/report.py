"""Aggregate every cell's metrics into the summary table (CSV, Markdown, LaTeX, JSON) and plots."""

from pathlib import Path

from whisperbench import cli
from whisperbench.report import formats, notes, plots, summary


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--metrics", nargs="+", required=True, help="every cell's metrics.json")
    arguments.add_argument("--hypotheses", nargs="+", required=True, help="every cell's hypotheses (same order)")
    for name in ("csv", "markdown", "latex", "json"):
        arguments.add_argument(f"--{name}", type=Path, required=True)
    arguments.add_argument("--plots", nargs="+", type=Path, required=True, help="plot files to write")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    metrics = summary.load_metrics(arguments.metrics)
    report = params["report"]
    metrics["parity"] = summary.parity(metrics, arguments.hypotheses, report["parity_reference"])
    against = summary.baselines(metrics, report["baseline_precision"])  # once, for intervals, table and notes
    summary.intervals(metrics, arguments.hypotheses, report["baseline_precision"], report["bootstrap"], against)
    metrics["baseline"] = [  # set only where a backend has no baseline precision (for the notes)
        None if against[key] == report["baseline_precision"] else against[key]
        for key in zip(metrics["dataset"], metrics["model"], metrics["backend"], strict=True)
    ]
    frame = summary.table(metrics, report["baseline_precision"], against)
    formats.write_tables(
        frame, arguments.csv, arguments.markdown, arguments.latex, arguments.json, notes.table_notes(metrics)
    )
    plots.write_plots(frame, arguments.plots)
    cli.log.info("summary of %d cells written", len(frame))


if __name__ == "__main__":
    main()
