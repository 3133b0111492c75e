"""Check params (schema, model ids, supported backend×precision pairs) and that dvc.yaml is current."""

from pathlib import Path

import yaml

from whisperbench import cli, dvc_stages
from whisperbench.config import artifacts, cells
from whisperbench.io import write_text


@cli.cli
def main(argv=None):
    arguments = cli.parser(__doc__)
    arguments.add_argument("--dvc-yaml", type=Path, help="fail if this generated file is out of date with params")
    arguments.add_argument("--out", required=True, help="stamp to write when valid (its content never changes)")
    arguments = arguments.parse_args(argv)
    params = cli.start(arguments)
    if arguments.dvc_yaml:
        raw = yaml.safe_load(Path(arguments.params).read_text())
        if arguments.dvc_yaml.read_text() != dvc_stages.render(params, raw, arguments.params):
            raise cli.UserError(
                f"{arguments.dvc_yaml} is out of date with {arguments.params} (models, datasets or "
                "backends changed): run `make dvc.yaml`, then `dvc repro` again"
            )
    write_text(arguments.out, "valid\n")
    cli.log.info("params valid: %d cells, %d artifacts", len(cells(params)), len(artifacts(params)))


if __name__ == "__main__":
    main()
