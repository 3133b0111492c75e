"""whisper.cpp built for this CPU against pywhispercpp's generic wheel: the ratio per stage.

Reads a finished study (its timing manifests, fetched models and built whisper.cpp artifacts) and runs each
whisper.cpp cell's own timing pass (scripts/transcribe.py: the study's warm-ups, repeats, threads and cut
points) once per build, each in its own process (a process loads one pywhispercpp), with
`backends.whispercpp.options.build` set to `native` then `wheel`. For each cell and build it writes the
stage figures as the study scores them (metrics.score.speed) and the build's system info, and per stage the
native / wheel speed-up (wheel time / native time; for RTFx native / wheel). Run it alone on the machine.

    python benchmarks/whispercpp_builds.py --params params.yaml --out benchmarks/results/whispercpp-builds-DATE
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from whisperbench import config
from whisperbench.io import write_json, write_text
from whisperbench.metrics import provenance

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is a folder of scripts, not a package
import option_variants  # noqa: E402  (after the path it is found on)

BUILDS = ("native", "wheel")
STAGES = option_variants.STAGES
BACKEND = "whispercpp"


def _timing_pass(cell: config.Cell, raw: dict, build: str, scratch: Path) -> dict:
    """The cell's timing pass on one build, in its own process: the stage figures and the build's record."""
    figures = option_variants.timing_pass(cell, raw, {"build": build}, scratch)
    runtime = figures.pop("runtime")
    return figures | {"build": runtime["build"], "system_info": runtime["system_info"]}


def speedups(native: dict, wheel: dict) -> dict:
    """Per stage, how many times faster the native build is (time stages: wheel / native; RTFx: native / wheel)."""
    return option_variants.speedups(wheel, native)


def _table(cells: list[dict]) -> str:
    header = ["dataset", "model", "precision", "build", *STAGES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        for build in (*BUILDS, "speed-up"):
            figures = cell[build] if build in BUILDS else cell["speedup"]
            values = [cell["dataset"], cell["model"], cell["precision"], build]
            values += [
                "" if figures[s] is None else f"{figures[s]:.{3 if build == 'speed-up' else 4}g}" for s in STAGES
            ]
            lines.append("| " + " | ".join(values) + " |")
    systems = {build: cells[0][build]["system_info"] for build in BUILDS} if cells else {}
    lines += ["", *(f"- {build}: `{info}`" for build, info in systems.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the finished study's config")
    parser.add_argument("--out", type=Path, required=True, help="output prefix, e.g. benchmarks/results/x-DATE")
    arguments = parser.parse_args(argv)
    raw = yaml.safe_load(arguments.params.read_text())
    params = config.validate(raw, str(arguments.params), {BACKEND})
    cells = []
    with tempfile.TemporaryDirectory() as scratch:
        for cell in (c for c in config.cells(params) if c.backend == BACKEND):
            builds = {build: _timing_pass(cell, raw, build, Path(scratch)) for build in BUILDS}
            speedup = speedups(builds["native"], builds["wheel"])
            cells.append({"dataset": cell.dataset, "model": cell.model, "precision": cell.precision, **builds})
            cells[-1]["speedup"] = speedup
            print(cell.dataset, cell.model, cell.precision, {s: round(v, 2) for s, v in speedup.items() if v})
    record = provenance.record(params=str(arguments.params), timing=params["timing"], cells=cells)
    write_json(arguments.out.with_suffix(".json"), record)
    write_text(arguments.out.with_suffix(".md"), _table(cells))


if __name__ == "__main__":
    main()
