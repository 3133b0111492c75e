"""Transcribe a dataset with one model/backend/precision: raw per-utterance hypotheses + timings."""

from whisperbench import cli
from whisperbench.config import Cell
from whisperbench.evaluate import transcribe_cell
from whisperbench.io import write_json, write_jsonl


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    for name in ("dataset", "model", "backend", "precision", "manifest", "model-dir", "artifact"):
        arguments.add_argument(f"--{name}", required=True)
    arguments.add_argument("--hypotheses", required=True, help="per-utterance output to write (.jsonl)")
    arguments.add_argument("--run", required=True, help="provenance of this run to write (.json)")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    cell = Cell(arguments.dataset, arguments.model, arguments.backend, arguments.precision)
    rows, run = transcribe_cell(
        cell, params, arguments.manifest, arguments.model_dir, arguments.artifact, progress=not arguments.quiet
    )
    write_jsonl(arguments.hypotheses, rows)
    write_json(arguments.run, run)
    cli.log.info("%s: %d utterances, peak RSS %.0f MB", cell.path, len(rows), run["peak_rss_mb"])


if __name__ == "__main__":
    main()
