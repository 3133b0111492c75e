"""How each backend's cost grows with the model: the scale study (configs/scale.yaml) run and summarised.

`--run CONFIG` runs the study one model at a time, smallest first (each stage a plain snakemake run on a
config with that one model, the cells of earlier stages cached; `--keep-going`, so a cell that fails records
its reason and the rest go on), then the whole config once for the summary. Each stage's wall time goes to
`<out>.stages.json`.

`--study DIR --out PREFIX` reads the finished study (results/summary.csv and the artifacts' records) and
writes PREFIX.md / .json / .png: for every cell its status, size, speed, memory, build time and build peak
memory (the export's too, for backends that export); and, per backend at its reference precision (fp32,
whisper.cpp f16), encoder ms, decoder ms/token, RTFx, peak MB and size MB against the parameter count on
log-log axes, with the fitted exponent (the slope of log metric on log parameters, least squares).

    python benchmarks/scaling.py --run configs/scale.yaml --cores 2 --out benchmarks/results/scaling-2026-12-03
    python benchmarks/scaling.py --study . --out benchmarks/results/scaling-2026-12-03
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import yaml

from whisperbench import dag
from whisperbench.io import write_json, write_text
from whisperbench.metrics import provenance
from whisperbench.models.architectures import ARCHITECTURES

METRICS = {
    "encoder_ms": "encoder ms",
    "decoder_ms_per_token": "decoder ms/token",
    "rtfx": "RTFx",
    "peak_rss_mb": "peak MB",
    "size_mb": "size MB",
}
REFERENCE = {"whispercpp": "f16"}  # a backend's reference precision where it has no fp32
TABLE = ("model", "params_m", "backend", "precision", "size_mb", "rtfx", "encoder_ms", "decoder_ms_per_token")
TABLE += ("peak_rss_mb", "build_s", "build_peak_rss_mb", "export_s", "export_peak_rss_mb", "status")


def _params_m(model: str, config: dict) -> float:
    architecture = ARCHITECTURES.get(model)
    return architecture.hub_params_m if architecture else math.inf  # a local folder of unknown size goes last


def run(config_path: Path, cores: int, out: Path) -> None:
    """One snakemake run per model, smallest first, then the whole config (its summary and figures)."""
    config = yaml.safe_load(config_path.read_text())
    stages = []
    for model in sorted(config["models"], key=lambda m: _params_m(m, config)):
        stage_config = config_path.with_name(f".{config_path.stem}-{model}.yaml")
        stage_config.write_text(yaml.safe_dump(config | {"models": [model]}, sort_keys=False))
        stages.append(_snakemake(stage_config, cores, model))
        write_json(out.with_suffix(".stages.json"), stages)
    stages.append(_snakemake(config_path, cores, "summary"))
    write_json(out.with_suffix(".stages.json"), stages)


def _snakemake(config: Path, cores: int, name: str) -> dict:
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--keep-going"]
    command += ["--configfile", str(config), "--replace-workflow-config"]
    start = time.perf_counter()
    returncode = subprocess.run(command, check=False).returncode
    return {
        "stage": name,
        "config": str(config),
        "returncode": returncode,
        "wall_s": round(time.perf_counter() - start),
    }


def _number(value) -> float | None:
    return float(value) if value not in ("", None) else None


def _build_cost(study: Path, row: dict) -> dict:
    """Build time and peak memory of the cell's artifact, and of the export it was built from."""
    cost = {}
    for prefix, folder in (
        ("build", dag.path("artifact", model=row["model"], backend=row["backend"], precision=row["precision"])),
        ("export", dag.path("export", model=row["model"], backend=row["backend"])),
    ):
        manifest = study / folder / "artifact.json"
        record = json.loads(manifest.read_text()) if manifest.is_file() else {}
        cost[f"{prefix}_s"] = record.get("build_s")
        cost[f"{prefix}_peak_rss_mb"] = record.get("build_peak_rss_mb")
    return cost


def cells(study: Path) -> list[dict]:
    with open(study / dag.path("summary_csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    numeric = set(METRICS) | {"params_m"}
    return [{k: (_number(v) if k in numeric else v) for k, v in row.items()} | _build_cost(study, row) for row in rows]


def exponents(rows: list[dict]) -> dict[str, dict[str, float | None]]:
    """Per backend, at its reference precision: the least-squares slope of log(metric) on log(parameters)."""
    import numpy as np

    fitted: dict[str, dict[str, float | None]] = {}
    for backend in sorted({row["backend"] for row in rows}):
        own = [r for r in rows if r["backend"] == backend and r["precision"] == REFERENCE.get(backend, "fp32")]
        fitted[backend] = {}
        for metric in METRICS:
            points = [(r["params_m"], r[metric]) for r in own if r["params_m"] and r[metric] and r[metric] > 0]
            slope = None
            if len({x for x, _ in points}) >= 2:
                slope = float(np.polyfit(np.log([x for x, _ in points]), np.log([y for _, y in points]), 1)[0])
            fitted[backend][metric] = slope
    return fitted


def figure(rows: list[dict], fitted: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure_, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.8), constrained_layout=True)
    for axis, (metric, label) in zip(axes, METRICS.items(), strict=True):
        for backend, slopes in fitted.items():
            reference = REFERENCE.get(backend, "fp32")
            own = sorted(
                (r["params_m"], r[metric])
                for r in rows
                if r["backend"] == backend and r["precision"] == reference
                if r["params_m"] and r[metric]
            )
            if own:
                slope = "" if slopes[metric] is None else f" ({slopes[metric]:.2f})"
                axis.plot(*zip(*own, strict=True), marker="o", label=f"{backend} {reference}{slope}")
        axis.set(xscale="log", yscale="log", xlabel="parameters (M)", title=label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7, title="fitted exponent", title_fontsize=7)
    figure_.suptitle("Cost against model size, random weights at each published architecture (log-log)")
    figure_.savefig(path, dpi=130)


def _cell(value) -> str:
    if value is None or value == "":
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def report(study: Path, out: Path) -> None:
    rows = cells(study)
    fitted = exponents(rows)
    figure(rows, fitted, out.with_suffix(".png"))
    lines = ["| " + " | ".join(TABLE) + " |", "|" + "---|" * len(TABLE)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in TABLE) + " |" for row in rows]
    lines += ["", "Fitted exponents (log metric against log parameters, reference precision per backend):", ""]
    lines += ["| backend | " + " | ".join(METRICS.values()) + " |", "|---|" + "---|" * len(METRICS)]
    lines += [f"| {b} | " + " | ".join(_cell(s.get(m)) for m in METRICS) + " |" for b, s in fitted.items()]
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(
        out.with_suffix(".json"),
        {"cpu": provenance.cpu_info(), "libraries": provenance.library_versions(), "cells": rows, "exponents": fitted},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a scale config to run (configs/scale.yaml)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--study", type=Path, help="a finished study's folder, to summarise")
    parser.add_argument("--out", type=Path, required=True, help="output prefix, e.g. benchmarks/results/scaling-DATE")
    arguments = parser.parse_args()
    if arguments.run:
        run(arguments.run, arguments.cores, arguments.out)
    if arguments.study:
        report(arguments.study, arguments.out)


if __name__ == "__main__":
    main()
