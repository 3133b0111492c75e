"""Build one backend×precision artifact of a model (convert, export, quantize) and record its size."""

from whisperbench import artifacts, cli
from whisperbench.io import read_json


@cli.cli
def main(argv=None):
    arguments = cli.model_arguments(cli.parser(__doc__))
    arguments.add_argument("--precision", required=True)
    arguments.add_argument("--out", required=True, help="artifact folder to write")
    arguments.add_argument("--sensitivity", help="the model's sensitivity.json (mixed precisions chosen by it)")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    sensitivity = read_json(arguments.sensitivity) if arguments.sensitivity else None
    record = artifacts.build(
        arguments.model_dir, arguments.model, arguments.backend, arguments.precision, params, arguments.out, sensitivity
    )
    cli.log.info(
        "%s/%s/%s: %.1f MB (%s)",
        arguments.model,
        arguments.backend,
        arguments.precision,
        record["size_bytes"] / 1e6,
        record.get("library"),
    )


if __name__ == "__main__":
    main()
