"""Write a manifest: a dataset's evaluated subset, its timed subset (--timing), or the calibration set."""

from whisperbench import cli
from whisperbench.data import datasets
from whisperbench.io import write_jsonl


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    which = arguments.add_mutually_exclusive_group(required=True)
    which.add_argument("--dataset", help="dataset id (a key of datasets in params)")
    which.add_argument("--calibration", action="store_true", help="the calibration set (params calibration)")
    arguments.add_argument("--timing", action="store_true", help="the dataset's timed subset (timing.utterances)")
    arguments.add_argument("--corpus", help="synthetic corpus folder (for synthetic datasets)")
    arguments.add_argument("--clips", help="folder the chosen clips are written to (Hugging Face datasets)")
    arguments.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    if arguments.calibration:
        rows = datasets.calibration_rows(params, arguments.corpus)
    elif arguments.timing:
        rows = datasets.timing_rows(arguments.dataset, params, arguments.corpus, arguments.clips)
    else:
        rows = datasets.manifest_rows(arguments.dataset, params, arguments.corpus, arguments.clips)
    write_jsonl(arguments.out, rows)
    name = arguments.dataset or datasets.CALIBRATION
    cli.log.info("%s: %d utterances, %.1f min of audio", name, len(rows), sum(r["duration_s"] for r in rows) / 60)


if __name__ == "__main__":
    main()
