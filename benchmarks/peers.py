"""Our exports against the peer runtimes: speed near FP32 accuracy, and where each artifact's bytes go.

Reads a finished study (its summary.csv and the artifacts it built), so the numbers come from one run
on the same clips and threads; run the study alone on the machine. For each dataset and model:

1. **Speed near FP32 accuracy**: our fastest cell (not a peer runtime) whose WER is within
   `--wer-margin` points of the reference cell (PyTorch fp32), against each `--peers` cell
   (CTranslate2 int8, whisper.cpp q8_0): the RTFx ratio, the WER difference, and per stage (encoder ms,
   first-token ms, decoder ms/token) where the time goes.
2. **Size against bits**: every cell's artifact against params x bits / 8 (bits from the precision's
   name), and its bytes by tensor group (quantized weights, scales and tables, float embeddings, float
   weights kept, small float tensors, other files), read from the artifact's own files.

    python benchmarks/peers.py --study . --out benchmarks/results/peers-2026-12-01
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from whisperbench import dag
from whisperbench.backends import registry
from whisperbench.io import write_json
from whisperbench.metrics import provenance, sizes
from whisperbench.models import fetch

STAGES = ("rtfx", "encoder_ms", "first_token_ms", "decoder_ms_per_token")


def _number(value: str) -> float | None:
    return float(value) if value not in ("", None) else None


def _rows(summary: Path) -> list[dict]:
    with open(summary, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("wer_pct", "size_mb", *STAGES):
            row[key] = _number(row.get(key))
    return rows


def _cell(rows: list[dict], backend_precision: str) -> dict | None:
    backend, precision = backend_precision.split("/")
    found = [row for row in rows if row["backend"] == backend and row["precision"] == precision]
    return found[0] if found else None


def _stages(row: dict) -> dict:
    return {key: row[key] for key in ("wer_pct", "size_mb", *STAGES)}


def speed_near_reference(rows: list[dict], reference: str, peers: list[str], margin: float) -> dict:
    """One dataset and model: our fastest cell within `margin` WER points of the reference, vs each peer."""
    ref = _cell(rows, reference)
    ours = [
        row
        for row in rows
        if not registry.get(row["backend"]).peer
        and row["rtfx"] is not None
        and row["wer_pct"] is not None
        and row["wer_pct"] <= ref["wer_pct"] + margin
    ]
    best = max(ours, key=lambda row: row["rtfx"])
    result = {"reference": {"cell": reference, **_stages(ref)}, "ours": {"cell": _name(best), **_stages(best)}}
    for peer in peers:
        other = _cell(rows, peer)
        if other is None or other["rtfx"] is None:
            result[peer] = {"missing": "not in this study or not timed"}
            continue
        ratios = {f"{key}_ratio": _ratio(best[key], other[key]) for key in STAGES}
        result[peer] = {**_stages(other), **ratios, "wer_difference": best["wer_pct"] - other["wer_pct"]}
    return result


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return ours / theirs if ours is not None and theirs else None


def _name(row: dict) -> str:
    return f"{row['backend']}/{row['precision']}"


def parameter_count(study: Path, model: str) -> int:
    """The fetched model's parameters (tied tensors once), as its safetensors store them."""
    folder = fetch.hf_dir(study / dag.path("model", model=model))
    counted = sum(
        math.prod(tensor.shape)
        for path in folder.glob("*.safetensors")
        for tensor in sizes.safetensors_tensors(path, folder)
    )
    if not counted:
        raise SystemExit(f"{folder}: no safetensors weights found; fetch the model first")
    return counted


def size_against_bits(study: Path, row: dict, parameters: int) -> dict:
    """An artifact's bytes against params x bits / 8, by tensor group."""
    folder = study / dag.path("artifact", model=row["model"], backend=row["backend"], precision=row["precision"])
    bits = sizes.nominal_bits(row["precision"])
    module = registry.get(row["backend"]).load_module()
    found = sizes.breakdown(folder, module.stored_tensors(folder))
    ideal = parameters * bits / 8
    return {"cell": _name(row), "bits": bits, "ideal_bytes": ideal, "ratio": found["total_bytes"] / ideal, **found}


def _markdown(report: dict) -> str:
    lines = [
        "| dataset | model | ours (fastest within margin) | WER | RTFx | peer | WER | RTFx | ours/peer RTFx | "
        "encoder | decoder ms/token |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for key, speed in report["speed"].items():
        dataset, model = key.split("|")
        ours = speed["ours"]
        for peer in report["peers"]:
            other = speed[peer]
            if "missing" in other:
                continue
            lines.append(
                f"| {dataset} | {model} | {ours['cell']} | {ours['wer_pct']:.2f} | {ours['rtfx']:.2f} | {peer} | "
                f"{other['wer_pct']:.2f} | {other['rtfx']:.2f} | {other['rtfx_ratio']:.2f} | "
                f"{_fmt(ours['encoder_ms'])} vs {_fmt(other['encoder_ms'])} ms | "
                f"{_fmt(ours['decoder_ms_per_token'])} vs {_fmt(other['decoder_ms_per_token'])} |"
            )
    groups = " | ".join(sizes.GROUPS)
    lines += [
        "",
        f"| model | cell | bits | size MB | params x bits / 8 MB | ratio | {groups} |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(sizes.GROUPS),
    ]
    for model, cells in report["sizes"].items():
        for cell in cells:
            parts = " | ".join(f"{cell['groups'][group] / 1e6:.1f}" for group in sizes.GROUPS)
            lines.append(
                f"| {model} | {cell['cell']} | {cell['bits']} | {cell['total_bytes'] / 1e6:.1f} | "
                f"{cell['ideal_bytes'] / 1e6:.1f} | {cell['ratio']:.2f} | {parts} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def main(argv=None) -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--study", type=Path, default=Path("."), help="the study folder (results/, data/)")
    arguments.add_argument("--reference", default="pytorch/fp32")
    arguments.add_argument("--peers", nargs="+", default=["ctranslate2/int8", "whispercpp/q8_0"])
    arguments.add_argument("--wer-margin", type=float, default=0.5, help="WER points above the reference")
    arguments.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    arguments = arguments.parse_args(argv)
    rows = [row for row in _rows(arguments.study / dag.path("summary_csv")) if not row["status"].startswith("failed")]
    report = {"peers": arguments.peers, "reference": arguments.reference, "wer_margin": arguments.wer_margin}
    report["speed"], report["sizes"] = {}, {}
    for dataset in sorted({row["dataset"] for row in rows}):
        for model in sorted({row["model"] for row in rows}):
            cells = [row for row in rows if row["dataset"] == dataset and row["model"] == model]
            report["speed"][f"{dataset}|{model}"] = speed_near_reference(
                cells, arguments.reference, arguments.peers, arguments.wer_margin
            )
    for model in sorted({row["model"] for row in rows}):
        parameters = parameter_count(arguments.study, model)
        first = sorted({row["dataset"] for row in rows})[0]
        cells = [row for row in rows if row["model"] == model and row["dataset"] == first]
        report["sizes"][model] = [size_against_bits(arguments.study, row, parameters) for row in cells]
    # The timings are the study's own (its run records hold their machine); this records the reader's.
    write_json(arguments.out.with_suffix(".json"), provenance.record(study=str(arguments.study), **report))
    arguments.out.with_suffix(".md").write_text(_markdown(report))
    print(_markdown(report))


if __name__ == "__main__":
    main()
