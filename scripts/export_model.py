"""Export a model once for a backend (e.g. ONNX FP32 graphs) and check it against PyTorch FP32."""

from whisperbench import artifacts, cli


@cli.cli
def main(argv=None):
    arguments = cli.model_arguments(cli.parser(__doc__))
    arguments.add_argument("--calibration", required=True, help="calibration manifest (.jsonl): check clips")
    arguments.add_argument("--out", required=True, help="export folder to write")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    record = artifacts.export(
        arguments.model_dir, arguments.model, arguments.backend, params, arguments.calibration, arguments.out
    )
    check = record["check"]
    cli.log.info(
        "%s/%s: %.1f MB; check: %s/%s transcripts identical to PyTorch, encoder max abs diff %.2e",
        arguments.model,
        arguments.backend,
        record["size_bytes"] / 1e6,
        check["identical_transcripts"],
        check["utterances"],
        check["encoder_max_abs_diff"],
    )


if __name__ == "__main__":
    main()
