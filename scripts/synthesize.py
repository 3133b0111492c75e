"""Generate the offline synthetic corpus (TTS of the sentences in this repo)."""

from whisperbench import cli
from whisperbench.data import synthetic


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--out", required=True, help="corpus folder to write (wav files + transcripts.tsv)")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    result = synthetic.generate(arguments.out, params["synthetic"]["engine"], progress=not arguments.quiet)
    cli.log.info("synthesized %(utterances)d utterances with %(voice)s", result)


if __name__ == "__main__":
    main()
