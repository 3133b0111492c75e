"""Score one cell from its raw hypotheses and run record: WER, RTF/RTFx, stage timings, memory, size."""

import json
from pathlib import Path

from whisperbench import cli
from whisperbench.io import read_jsonl, write_json
from whisperbench.metrics.score import score


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--hypotheses", required=True)
    arguments.add_argument("--run", required=True)
    arguments.add_argument("--out", required=True, help="metrics to write (.json)")
    arguments = arguments.parse_args(argv)
    cli.start(arguments)
    metrics = score(read_jsonl(arguments.hypotheses), json.loads(Path(arguments.run).read_text()))
    write_json(arguments.out, metrics)
    cli.log.info(
        "WER %.2f %% on %d utterances, RTFx %.2f",
        100 * (metrics["wer"] or 0),
        metrics["n_utterances"],
        metrics["rtfx"] or 0,
    )


if __name__ == "__main__":
    main()
