"""One backend option, several values: each cell's timing pass per value, and the speed-up per stage.

Reads a finished study (its params, timing manifests, fetched models and built artifacts) and runs each cell
of `--backend` through its own timing pass (scripts/transcribe.py: the study's warm-ups, repeats, threads and
cut points) once per value of `--option`, each in its own process, the other options as the study set them.
For each cell and value it writes the stage figures as the study scores them (metrics.score.speed), the
runtime record's extra fields (e.g. `compile_s`), and per stage the speed-up of each value against the first
(time stages: first / value; RTFx: value / first). Run it alone on the machine.

    python benchmarks/option_variants.py --params params.yaml --backend pytorch --option compile \
        --values false true --out benchmarks/results/pytorch-compile-DATE
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from whisperbench import config, dag
from whisperbench.io import read_jsonl, write_json, write_text
from whisperbench.metrics import provenance, score

STAGES = ("rtfx", "encoder_ms", "first_token_ms", "decoder_ms_per_token")


def timing_pass(cell: config.Cell, raw: dict, options: dict, scratch: Path) -> dict:
    """The cell's timing pass with `options` over the study's: the stage figures and the runtime record."""
    backends = raw["backends"]
    merged = backends[cell.backend].get("options", {}) | options
    raw = raw | {"backends": backends | {cell.backend: backends[cell.backend] | {"options": merged}}}
    label = "-".join(f"{key}={value}" for key, value in options.items())
    params_path = scratch / f"params-{label}.yaml"
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    rows, run = scratch / f"{label}.jsonl", scratch / f"{label}.json"
    values = {"dataset": cell.dataset, "model": cell.model, "backend": cell.backend, "precision": cell.precision}
    command = [sys.executable, "scripts/transcribe.py", "--pass", "timing", "--quiet", "--params", str(params_path)]
    command += [f"--{name}={value}" for name, value in values.items()]
    command += ["--manifest", dag.path("timing_manifest", **values), "--model-dir", dag.path("model", **values)]
    command += ["--artifact", dag.path("artifact", **values), "--rows", str(rows), "--run", str(run)]
    subprocess.run(command, check=True)
    record = json.loads(run.read_text())
    timed = [row for row in read_jsonl(rows) if "total_ms" in row]
    return {
        **{stage: score.speed(timed)[stage] for stage in STAGES},
        "utterances": len(timed),
        "runtime": record["runtime"],
        "load_s": record.get("load_s"),
        "other_load_cores": record.get("other_load_cores"),
    }


def speedups(first: dict, other: dict) -> dict:
    """Per stage, how many times faster `other` is than `first` (time stages: first / other; RTFx: other / first)."""
    ratios = {}
    for stage in STAGES:
        a, b = (other[stage], first[stage]) if stage == "rtfx" else (first[stage], other[stage])
        ratios[stage] = a / b if a and b else None
    return ratios


def _table(cells: list[dict], option: str) -> str:
    header = ["dataset", "model", "precision", option, *STAGES, "load s", "compile s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        for label, figures in cell["variants"].items():
            values = [cell["dataset"], cell["model"], cell["precision"], label]
            values += ["" if figures[s] is None else f"{figures[s]:.4g}" for s in STAGES]
            values += [str(figures["load_s"]), str(figures["runtime"].get("compile_s", ""))]
            lines.append("| " + " | ".join(values) + " |")
        for label, ratios in cell["speedup"].items():
            values = [cell["dataset"], cell["model"], cell["precision"], f"speed-up {label}"]
            values += ["" if ratios[s] is None else f"{ratios[s]:.3g}" for s in STAGES] + ["", ""]
            lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the finished study's config")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--option", required=True, help="an option of the backend's `options`")
    parser.add_argument("--values", nargs="+", required=True, help="values (YAML), the first is the reference")
    parser.add_argument("--out", type=Path, required=True, help="output prefix, e.g. benchmarks/results/x-DATE")
    arguments = parser.parse_args(argv)
    raw = yaml.safe_load(arguments.params.read_text())
    params = config.validate(raw, str(arguments.params), {arguments.backend})
    values = {text: yaml.safe_load(text) for text in arguments.values}
    cells = []
    with tempfile.TemporaryDirectory() as scratch:
        for cell in (c for c in config.cells(params) if c.backend == arguments.backend):
            variants = {
                label: timing_pass(cell, raw, {arguments.option: value}, Path(scratch))
                for label, value in values.items()
            }
            first, *others = variants
            speedup = {label: speedups(variants[first], variants[label]) for label in others}
            cells.append({"dataset": cell.dataset, "model": cell.model, "precision": cell.precision})
            cells[-1] |= {"variants": variants, "speedup": speedup}
            print(
                cell.model,
                cell.precision,
                {label: {s: round(v, 2) for s, v in r.items() if v} for label, r in speedup.items()},
            )
    record = provenance.record(
        params=str(arguments.params), backend=arguments.backend, option=arguments.option, timing=params["timing"]
    )
    write_json(arguments.out.with_suffix(".json"), record | {"cells": cells})
    write_text(arguments.out.with_suffix(".md"), _table(cells, arguments.option))


if __name__ == "__main__":
    main()
