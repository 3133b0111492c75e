"""Score one cell: WER from the accuracy pass, speed and memory from the timing pass, and their agreement."""

from whisperbench import cli
from whisperbench.io import read_json, read_jsonl, write_json
from whisperbench.metrics.score import score


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--hypotheses", required=True, help="accuracy pass rows (.jsonl)")
    arguments.add_argument("--accuracy", required=True, help="accuracy pass record (.json)")
    arguments.add_argument("--timings", required=True, help="timing pass rows (.jsonl)")
    arguments.add_argument("--timing", required=True, help="timing pass record (.json)")
    arguments.add_argument("--out", required=True, help="metrics to write (.json)")
    arguments = arguments.parse_args(argv)
    cli.start(arguments)
    metrics = score(
        read_jsonl(arguments.hypotheses),
        read_json(arguments.accuracy),
        read_jsonl(arguments.timings),
        read_json(arguments.timing),
    )
    write_json(arguments.out, metrics)
    cli.log.info(
        "WER %.2f %% on %d utterances, RTFx %.2f on %d timed, agreement %s",
        100 * (metrics["wer"] or 0),
        metrics["n_utterances"],
        metrics.get("rtfx") or 0,
        metrics.get("n_timed", 0),
        metrics.get("agreement"),
    )


if __name__ == "__main__":
    main()
