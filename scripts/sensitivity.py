"""Rank a model's tensor groups by the damage of quantizing each alone to a 4-bit scheme, on the
calibration pool (never an evaluated set): write sensitivity.json and its figure."""

from pathlib import Path

from whisperbench import cli
from whisperbench.artifacts import build_threads
from whisperbench.backends.base import Decoding
from whisperbench.errors import UserError
from whisperbench.io import atomic_path, read_jsonl, write_json
from whisperbench.mixed import schemes, sensitivity
from whisperbench.models import fetch


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--model-dir", required=True, help="fetched model folder")
    arguments.add_argument("--model", required=True)
    arguments.add_argument("--scheme", required=True, help="e.g. sym4_b32_fp32, pal4_g8 (the backend's 4-bit scheme)")
    arguments.add_argument("--calibration", required=True, help="calibration manifest (.jsonl)")
    arguments.add_argument("--out", required=True, help="sensitivity.json to write")
    arguments.add_argument("--plots", nargs="*", type=Path, default=[], help="figure files to write")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    try:
        scheme = schemes.parse(arguments.scheme)
    except ValueError as error:
        raise UserError(f"--scheme: {error}") from None
    rows = read_jsonl(arguments.calibration)[: params["sensitivity"]["utterances"]]
    decoding = Decoding.from_params(params["decoding"])
    hf_dir = fetch.hf_dir(arguments.model_dir)
    record = sensitivity.measure(hf_dir, rows, scheme, decoding, decoding.max_new_tokens, build_threads())
    record = {
        "model": arguments.model,
        "weights_sha256": fetch.read_source(arguments.model_dir)["weights_sha256"],
    } | record
    for plot in arguments.plots:
        with atomic_path(plot) as staging:
            title = f"{arguments.model}: one group at a time in {arguments.scheme}"
            sensitivity.figure(record, title, staging, plot.suffix.lstrip("."))
    write_json(arguments.out, record)
    top = ", ".join(row["group"] for row in record["ranking"][:3])
    cli.log.info(
        "%s %s: %d groups ranked on %d tokens; most damaging: %s",
        arguments.model,
        arguments.scheme,
        len(record["ranking"]),
        record["tokens"],
        top,
    )


if __name__ == "__main__":
    main()
