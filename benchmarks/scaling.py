"""How each backend's cost grows with the model: the scale study (configs/scale.yaml) run and summarised.

`--run CONFIG` runs the study one model at a time, smallest first (each stage a plain snakemake run on a
config with that one model, the cells of earlier stages cached; `--keep-going`, so a cell that fails records
its reason and the rest go on); `--models` picks and orders the stages, `--drop backend:precision` leaves
pairs out of them. Each stage's wall time goes to `<out>.stages.json`. `--per-backend` splits each model's
stage into one run per backend and `--prune` then deletes that backend's exported and built files, keeping
their records (artifact.json: size, build time, build peak memory): a large model's artifacts for every
backend (about 58 GB for large-v3) need not fit on the disk together.

`--study DIR --out PREFIX` reads every scored cell of the study (results/*/*/*/*/metrics.json, whichever
stage scored it, and the artifacts' records) and
writes PREFIX.md / .json / .png: for every cell its status, size, speed, memory, build time and build peak
memory (the export's too, for backends that export); and, per backend at its reference precision (fp32,
whisper.cpp f16), encoder ms, decoder ms/token, RTFx, peak MB and size MB against the parameter count on
log-log axes, with the fitted exponent (the slope of log metric on log parameters, least squares).

`--only` runs (or reports) only some backends or backend:precision pairs; `--carry EARLIER.json` then adds the
earlier report's rows for every cell this study has not scored, each row naming the report that measured it
(`run`): one backend re-run after a fix, the rest as measured before.

    python benchmarks/scaling.py --run configs/scale.yaml --cores 2 --out benchmarks/results/scaling-2026-12-03
    python benchmarks/scaling.py --study . --out benchmarks/results/scaling-2026-12-03
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from whisperbench import dag
from whisperbench.artifacts import MANIFEST
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
TABLE += (
    "peak_rss_mb",
    "peak_rss_loading_mb",
    "build_s",
    "build_peak_rss_mb",
    "export_s",
    "export_peak_rss_mb",
    "status",
    "run",
)


def _params_m(model: str, config: dict) -> float:
    architecture = ARCHITECTURES.get(model)
    return architecture.hub_params_m if architecture else math.inf  # a local folder of unknown size goes last


def named(only: list[str], backend: str, precision: str) -> bool:
    """Whether `--only` names the backend or this backend:precision pair."""
    return backend in only or f"{backend}:{precision}" in only


def _dropped(config: dict, drop: list[str], only: list[str] = ()) -> dict:
    """The config without the backend:precision pairs in `drop` and, where `only` names backends or
    backend:precision pairs, without every pair it does not name (a backend left with none is removed)."""
    backends = {}
    for name, spec in config["backends"].items():
        kept = [p for p in spec["precisions"] if f"{name}:{p}" not in drop]
        if only:
            kept = [p for p in kept if named(only, name, p)]
        if kept:
            backends[name] = spec | {"precisions": kept}
    return config | {"backends": backends}


def stages(
    config: dict, models: list[str] | None, drop: list[str], per_backend: bool, only: list[str] = ()
) -> list[tuple[str, dict]]:
    """(name, config) of each stage: one per model (`models`, default: the config's, smallest first), or one
    per model and backend; each without the `drop` pairs and with only the `only` ones (where given)."""
    kept = _dropped(config, drop, only)
    ordered = models or sorted(config["models"], key=lambda m: _params_m(m, config))
    if not per_backend:
        return [(model, kept | {"models": [model]}) for model in ordered]
    return [
        (f"{model}-{backend}", kept | {"models": [model], "backends": {backend: spec}} | _baseline(kept, spec))
        for model in ordered
        for backend, spec in kept["backends"].items()
    ]


def _baseline(config: dict, spec: dict) -> dict:
    """A one-backend stage's report baseline: the study's, or that backend's first precision where it has
    not got it (whisper.cpp has no fp32)."""
    report = config.get("report", {})
    if report.get("baseline_precision", "fp32") in spec["precisions"]:
        return {}
    return {"report": report | {"baseline_precision": spec["precisions"][0]}}


PRUNED = Path("data/pruned")  # where a pruned folder's record is kept, outside the DAG's paths


def prune(study: Path, config: dict) -> None:
    """Delete the stage's exported and built files. Each folder's record (artifact.json: size, build time,
    build peak memory) is copied under PRUNED first: the workflow removes a cached folder whose files are
    missing before it plans (so it is rebuilt), which would take the record with it."""
    for model in config["models"]:
        for backend, spec in config["backends"].items():
            folders = [dag.path("export", model=model, backend=backend)]
            folders += [dag.path("artifact", model=model, backend=backend, precision=p) for p in spec["precisions"]]
            for folder in folders:
                record = study / folder / MANIFEST
                if record.is_file():
                    (study / PRUNED / folder).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(record, study / PRUNED / folder / MANIFEST)
                _delete_files_but_records(study / folder)


def _record(study: Path, folder: str) -> dict:
    """A build's record: in its folder, or, once pruned and removed, its copy under PRUNED."""
    for path in (study / folder / MANIFEST, study / PRUNED / folder / MANIFEST):
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def _delete_files_but_records(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):  # files before the folders that hold them
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        elif path.is_file() and path.name != MANIFEST:
            path.unlink()


def run(config_path: Path, cores: int, out: Path, arguments: argparse.Namespace) -> None:
    """One snakemake run per stage; the cells of earlier stages stay cached (or, pruned, recorded)."""
    config = yaml.safe_load(config_path.read_text())
    stages_path = out.with_suffix(".stages.json")
    done = json.loads(stages_path.read_text()) if stages_path.is_file() else []
    for name, stage in stages(config, arguments.models, arguments.drop, arguments.per_backend, arguments.only):
        stage_config = config_path.with_name(f".{config_path.stem}-{name}.yaml")
        stage_config.write_text(yaml.safe_dump(stage, sort_keys=False))
        done.append(_snakemake(stage_config, cores, name) | {"dropped": arguments.drop, "only": arguments.only})
        if arguments.prune:
            prune(Path.cwd(), stage)
            done[-1]["pruned"] = True
        write_json(stages_path, done)


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


def _build_cost(study: Path, row: dict) -> dict:
    """Build time and peak memory of the cell's artifact, and of the export it was built from."""
    cost = {}
    for prefix, folder in (
        ("build", dag.path("artifact", model=row["model"], backend=row["backend"], precision=row["precision"])),
        ("export", dag.path("export", model=row["model"], backend=row["backend"])),
    ):
        record = _record(study, folder)
        cost[f"{prefix}_s"] = record.get("build_s")
        cost[f"{prefix}_peak_rss_mb"] = record.get("build_peak_rss_mb")
    return cost


BUILD_COST = ("build_s", "build_peak_rss_mb", "export_s", "export_peak_rss_mb")


def cells(
    study: Path, earlier: list[Path] = (), carried: list[Path] = (), run: str = "", only: list[str] = ()
) -> list[dict]:
    """Every scored cell under the study's results/ (any stage's), with its build cost; where the build
    records are gone (a study folder whose data/ was deleted for disk), the cost an `earlier` report of the
    same study recorded for that cell (the first report that has it). With `carried` reports, their rows
    for the cells this study has not scored (a backend re-run alone) join the table whole; every row's
    `run` names the report that measured it (this one: `run`). `only` (backends or backend:precision pairs)
    keeps those of the study's cells."""
    recorded = {}
    for report_path in reversed(earlier):
        for row in json.loads(Path(report_path).read_text())["cells"]:
            if row.get("build_s") is not None or row.get("export_s") is not None:
                recorded[(row["model"], row["backend"], row["precision"])] = {k: row.get(k) for k in BUILD_COST}
    rows = []
    for path in sorted((study / "results").glob("*/*/*/*/metrics.json")):
        metrics = json.loads(path.read_text())
        row = {k: metrics.get(k) for k in ("model", "backend", "precision", "status", "peak_rss_loading_mb", *METRICS)}
        if only and not named(only, row["backend"], row["precision"]):
            continue
        row["params_m"] = metrics["n_parameters"] / 1e6 if metrics.get("n_parameters") else None
        cost = _build_cost(study, row)
        if cost["build_s"] is None:
            cost = recorded.get((row["model"], row["backend"], row["precision"]), cost)
        rows.append(row | cost | {"run": run})
    rows += _carried_rows(carried, {(r["model"], r["backend"], r["precision"]) for r in rows})
    return sorted(rows, key=lambda r: (r["params_m"] or math.inf, r["backend"], r["precision"]))


def _carried_rows(reports: list[Path], scored: set[tuple[str, str, str]]) -> list[dict]:
    """The rows of earlier reports for cells not in `scored` (the first report that has a cell wins)."""
    rows = []
    for report_path in reports:
        for row in json.loads(Path(report_path).read_text())["cells"]:
            key = (row["model"], row["backend"], row["precision"])
            if key not in scored:
                scored.add(key)
                rows.append(row | {"run": row.get("run") or Path(report_path).with_suffix("").name})
    return rows


def on_ladder(model: str) -> bool:
    """Whether a model is on the size ladder (as many decoder as encoder layers: tiny … large-v3), along which
    encoder and decoder grow together; large-v3-turbo's 4 and distil-large-v3's 2 decoder layers put them
    off it (plotted, not fitted: they would pull the decoder's exponent down)."""
    architecture = ARCHITECTURES.get(model)
    return architecture is not None and architecture.encoder_layers == architecture.decoder_layers


def exponents(rows: list[dict]) -> dict[str, dict[str, float | None]]:
    """Per backend, at its reference precision, over the ladder's models: the least-squares slope of
    log(metric) on log(parameters)."""
    import numpy as np

    fitted: dict[str, dict[str, float | None]] = {}
    for backend in sorted({row["backend"] for row in rows}):
        reference = REFERENCE.get(backend, "fp32")
        own = [r for r in rows if r["backend"] == backend and r["precision"] == reference and on_ladder(r["model"])]
        fitted[backend] = {}
        for metric in METRICS:
            points = [(r["params_m"], r[metric]) for r in own if r["params_m"] and r[metric] and r[metric] > 0]
            slope = None
            if len({x for x, _ in points}) >= 2:
                slope = float(np.polyfit(np.log([x for x, _ in points]), np.log([y for _, y in points]), 1)[0])
            fitted[backend][metric] = slope
    return fitted


def memory_fits(rows: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per backend and build step (each precision, and the export), the least-squares line of the step's
    peak memory on the parameter count: [MB, bytes per parameter] (MB per million parameters), the
    backends' BUILD_MEMORY."""
    return _line_fits(
        rows, lambda row: ((row["precision"], row["build_peak_rss_mb"]), ("export", row["export_peak_rss_mb"]))
    )


def disk_fits(rows: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per backend and precision, the least-squares line of the artifact's size on the parameter count:
    [MB, bytes per parameter], the backends' BUILD_DISK."""
    return _line_fits(rows, lambda row: ((row["precision"], row["size_mb"]),))


def _line_fits(rows: list[dict], measured) -> dict[str, dict[str, list[float]]]:
    import numpy as np

    points: dict[tuple[str, str], dict[float, float]] = {}
    for row in rows:
        for step, value in measured(row):
            if value and row["params_m"]:
                points.setdefault((row["backend"], step), {})[row["params_m"]] = value
    fits: dict[str, dict[str, list[float]]] = {}
    for (backend, step), by_size in sorted(points.items()):
        if len(by_size) >= 2:
            slope, intercept = np.polyfit(list(by_size), list(by_size.values()), 1)
            fits.setdefault(backend, {})[step] = [max(round(float(intercept)), 0), round(float(slope), 2)]
    return fits


def figure(rows: list[dict], fitted: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure_, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.8), constrained_layout=True)
    for axis, (metric, label) in zip(axes, METRICS.items(), strict=True):
        for backend, slopes in fitted.items():
            reference = REFERENCE.get(backend, "fp32")
            own = sorted(
                (on_ladder(r["model"]), r["params_m"], r[metric])
                for r in rows
                if r["backend"] == backend and r["precision"] == reference
                if r["params_m"] and r[metric]
            )
            ladder = [(x, y) for fitted_, x, y in own if fitted_]
            if ladder:
                slope = "" if slopes[metric] is None else f" ({slopes[metric]:.2f})"
                (line,) = axis.plot(*zip(*ladder, strict=True), marker="o", label=f"{backend} {reference}{slope}")
                off = [(x, y) for fitted_, x, y in own if not fitted_]  # turbo, distil: hollow, not joined
                if off:
                    axis.plot(*zip(*off, strict=True), "o", mfc="none", color=line.get_color())
        axis.set(xscale="log", yscale="log", xlabel="parameters (M)", title=label)
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap at these spans
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7, title="fitted exponent", title_fontsize=7)
    figure_.suptitle(
        "Cost against model size, random weights at each published architecture (log-log; hollow: fewer "
        "decoder than encoder layers, not fitted)"
    )
    figure_.savefig(path, dpi=130)


def _cell(value) -> str:
    if value is None or value == "":
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def report(study: Path, out: Path, earlier: list[Path] = (), carried: list[Path] = (), only: list[str] = ()) -> None:
    rows = cells(study, earlier, carried, out.name, only)
    fitted = exponents(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure(rows, fitted, out.with_suffix(".png"))
    lines = ["| " + " | ".join(TABLE) + " |", "|" + "---|" * len(TABLE)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in TABLE) + " |" for row in rows]
    lines += ["", "Fitted exponents (log metric against log parameters, reference precision per backend, over the "]
    lines += ["ladder: models with as many decoder as encoder layers; the others are in the table, not the fit):", ""]
    lines += ["| backend | " + " | ".join(METRICS.values()) + " |", "|---|" + "---|" * len(METRICS)]
    lines += [f"| {b} | " + " | ".join(_cell(s.get(m)) for m in METRICS) + " |" for b, s in fitted.items()]
    memory, disk = memory_fits(rows), disk_fits(rows)
    for title, fits in (("Build peak memory", memory), ("Artifact size on disk", disk)):
        lines += [
            "",
            f"{title}, fitted (each backend's BUILD_{title.split()[-1].upper()}): MB + bytes per parameter",
            "",
        ]
        lines += [
            f"- {b}: " + ", ".join(f"{step} {mb} + {per}" for step, (mb, per) in steps.items())
            for b, steps in fits.items()
        ]
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    machine = {"cpu": provenance.cpu_info(), "libraries": provenance.library_versions()}
    fitted_lines = {"build_memory": memory, "build_disk": disk}
    write_json(out.with_suffix(".json"), machine | {"cells": rows, "exponents": fitted} | fitted_lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a scale config to run (configs/scale.yaml)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--models", nargs="+", help="run only these models, in this order")
    parser.add_argument("--drop", nargs="+", default=[], help="backend:precision pairs to leave out of the run")
    parser.add_argument(
        "--only", nargs="+", default=[], help="run (or report) only these backends or backend:precision pairs"
    )
    parser.add_argument("--per-backend", action="store_true", help="one stage per model and backend")
    parser.add_argument("--prune", action="store_true", help="delete each stage's built files, keep their records")
    parser.add_argument(
        "--earlier",
        nargs="+",
        type=Path,
        default=[],
        help="earlier reports of the study: build costs whose records are gone",
    )
    parser.add_argument(
        "--carry",
        nargs="+",
        type=Path,
        default=[],
        help="earlier reports whose rows join the table for the cells this study has not scored",
    )
    parser.add_argument("--study", type=Path, help="a finished study's folder, to summarise")
    parser.add_argument("--out", type=Path, required=True, help="output prefix, e.g. benchmarks/results/scaling-DATE")
    arguments = parser.parse_args()
    if arguments.run:
        run(arguments.run, arguments.cores, arguments.out, arguments)
    if arguments.study:
        report(arguments.study, arguments.out, arguments.earlier, arguments.carry, arguments.only)


if __name__ == "__main__":
    main()
