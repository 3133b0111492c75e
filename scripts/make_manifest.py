"""Write a dataset's manifest: a deterministic utterance subset (id, audio path, duration, reference)."""

from whisperbench import cli
from whisperbench.data import datasets
from whisperbench.io import write_jsonl


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--dataset", required=True, help="dataset id (a key of datasets in params)")
    arguments.add_argument("--corpus", help="synthetic corpus folder (for synthetic datasets)")
    arguments.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    rows = datasets.manifest_rows(arguments.dataset, params, arguments.corpus)
    write_jsonl(arguments.out, rows)
    cli.log.info(
        "%s: %d utterances, %.1f min of audio", arguments.dataset, len(rows), sum(r["duration_s"] for r in rows) / 60
    )


if __name__ == "__main__":
    main()
