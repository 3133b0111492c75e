"""Export a model once for a backend (ONNX graphs, Core ML packages) and check it against PyTorch FP32."""

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
    check = {key: value for key, value in record["check"].items() if key != "mismatches"}
    cli.log.info("%s/%s: %.1f MB; check: %s", arguments.model, arguments.backend, record["size_bytes"] / 1e6, check)


if __name__ == "__main__":
    main()
