"""Run one cell's accuracy pass (every utterance once, batched) or timing pass (timed subset, repeats)."""

from whisperbench import cli, evaluate
from whisperbench.config import Cell
from whisperbench.io import write_json, write_jsonl

PASSES = {"accuracy": evaluate.accuracy_pass, "timing": evaluate.timing_pass}


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--pass", dest="which", choices=PASSES, required=True)
    for name in ("dataset", "model", "backend", "precision", "manifest", "model-dir", "artifact"):
        arguments.add_argument(f"--{name}", required=True)
    arguments.add_argument("--rows", required=True, help="per-utterance output to write (.jsonl)")
    arguments.add_argument("--run", required=True, help="provenance of this pass to write (.json)")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    cell = Cell(arguments.dataset, arguments.model, arguments.backend, arguments.precision)
    rows, run = PASSES[arguments.which](
        cell, params, arguments.manifest, arguments.model_dir, arguments.artifact, progress=not arguments.quiet
    )
    write_jsonl(arguments.rows, rows)
    write_json(arguments.run, run)
    cli.log.info("%s %s pass: %d utterances, %d left out", cell.path, arguments.which, len(rows), run["n_left_out"])


if __name__ == "__main__":
    main()
