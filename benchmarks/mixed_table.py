"""Issue 22's comparison: uniform 4-bit, the sensitivity-chosen mix and the no-measurement mix of every backend,
on one table and one frontier figure, from the accuracy passes of one or more study folders.

Every ΔWER is paired against PyTorch fp32 of the same model (`--baseline-folder`, default the first folder),
over the utterances both decoded, so that cells of studies run apart (another budget, Core ML's palettes) sit
on one scale. Reads only result files (hypotheses.jsonl, accuracy.json: the artifact's record and weights);
no timing (the studies' timing passes are optional: `snakemake --until accuracy`).

    python benchmarks/mixed_table.py --folders ../runs/mixed ../runs/pal4 \
        --out docs/results/mixed-2026-12-07/table [--figure docs/results/mixed-2026-12-07/wer_vs_bits.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is a folder of scripts, not a package
from clips import write_record  # noqa: E402  (after the path it is found on)

DRAWS, SEED = 2000, 0
COLUMNS = ["model", "backend", "precision", "study", "WER %", "WER 95 % CI", "ΔWER", "ΔWER 95 % CI"]
COLUMNS += ["budget", "mix bits/w", "bits/w stored", "stored / nominal", "8-bit groups"]
# Where a cell's timing pass ran (metrics.json beside it): its speed and memory, as the study's table defines them.
SPEED = {"RTFx": "rtfx", "encoder ms": "encoder_ms", "decoder ms/token": "decoder_ms_per_token"}
SPEED |= {"peak MB": "peak_rss_mb"}
DEFAULT_BUDGET = 5.0  # the Options default: other budgets are named in the figure's labels


def cells(folder: Path) -> list[dict]:
    """Every cell of a study folder whose accuracy pass ran: its rows and its record."""
    from whisperbench.io import read_json, read_jsonl

    found = []
    for hypotheses in sorted(folder.glob("results/*/*/*/*/hypotheses.jsonl")):
        record = read_json(hypotheses.with_name("accuracy.json"))
        metrics = hypotheses.with_name("metrics.json")
        speed = read_json(metrics) if metrics.is_file() else {}
        found.append({"folder": folder.name, "rows": read_jsonl(hypotheses), "record": record, "speed": speed})
    return found


def _pct(pair) -> str:
    return f"[{100 * pair[0]:.2f}, {100 * pair[1]:.2f}]" if pair else ""


def _speed(metrics: dict, key: str):
    value = metrics.get(key)
    return "" if value is None else round(value, 2 if key in ("rtfx", "decoder_ms_per_token") else 0)


def row(cell: dict, baseline: dict | None) -> dict:
    from whisperbench.metrics import uncertainty

    record, counts = cell["record"], uncertainty.utterance_errors(cell["rows"])
    artifact, cell_key = record["artifact"], record["cell"]
    wer = sum(e for e, _ in counts.values()) / sum(w for _, w in counts.values())
    mix = artifact.get("mix") or {}
    stored = artifact["weights_bytes"] * 8 / record["weights"]["n_parameters"]
    delta = interval = None
    if baseline is not None:
        common = set(counts) & set(baseline)
        words = sum(counts[i][1] for i in common)
        delta = sum(counts[i][0] - baseline[i][0] for i in common) / words
        interval = uncertainty.delta_interval(counts, baseline, DRAWS, SEED)
    return {
        "model": cell_key["model"],
        "backend": cell_key["backend"],
        "precision": cell_key["precision"],
        "study": cell["folder"],
        "WER %": round(100 * wer, 2),
        "WER 95 % CI": _pct(uncertainty.wer_interval(counts, DRAWS, SEED)),
        "ΔWER": f"{100 * delta:+.2f}" if delta is not None else "",
        "ΔWER 95 % CI": _pct(interval),
        "budget": mix.get("budget_bits_per_weight", ""),
        "mix bits/w": mix.get("bits_per_weight", ""),
        "bits/w stored": round(stored, 2),
        "stored / nominal": round(stored / mix["bits_per_weight"], 2) if mix else "",
        "8-bit groups": ", ".join(mix.get("high_bit_groups", [])),
        **{column: _speed(cell["speed"], key) for column, key in SPEED.items()},
        "_wer": wer,
        "_interval": uncertainty.wer_interval(counts, DRAWS, SEED),
    }


def figure(rows: list[dict], path: Path) -> None:
    """WER (with its interval) against stored bits per weight, one panel per model; filled: uniform, hollow:
    the sensitivity-chosen mix, crossed: the no-measurement mix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from whisperbench.report.axes import place_labels

    models = sorted({r["model"] for r in rows})
    backends = sorted({r["backend"] for r in rows})
    colors = dict(zip(backends, ("#4C72B0", "#DD8452", "#55A868", "#C44E52"), strict=False))
    fig, axes = plt.subplots(1, len(models), figsize=(6.4 * len(models), 5.0), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        labels, drawn = [], set()
        for r in (r for r in rows if r["model"] == model):
            cell = (r["backend"], r["precision"], r["budget"], r["WER %"])
            if cell in drawn:  # the same cell run in two study folders (fp32 as each one's baseline): drawn once
                continue
            drawn.add(cell)
            low, high = r["_interval"] or (r["_wer"], r["_wer"])
            kind = "fixedmix" if "fixedmix" in r["precision"] else "mixed" if "mixed" in r["precision"] else "uniform"
            marker = {"uniform": "o", "mixed": "o", "fixedmix": "X"}[kind]
            face = colors[r["backend"]] if kind != "mixed" else "none"
            axis.errorbar(
                r["bits/w stored"], 100 * r["_wer"], yerr=[[100 * (r["_wer"] - low)], [100 * (high - r["_wer"])]],
                fmt=marker, color=colors[r["backend"]], mfc=face, ms=7, capsize=2, lw=0.8,
            )  # fmt: skip
            budget = f" @{r['budget']:g} b" if r["budget"] not in ("", DEFAULT_BUDGET) else ""
            label = f"{r['backend']} {r['precision']}{budget}"
            labels.append((r["bits/w stored"], 100 * r["_wer"], label))
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 4.0, 5.0, 6.0, 8.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        place_labels(axis, labels)
        axis.set_xlabel("bits per weight as stored (weight bytes x 8 / parameters; log scale)")
        axis.set_ylabel("WER % on test-other (95 % bootstrap interval)")
        axis.set_title(f"{model}: filled uniform, hollow sensitivity mix, X fixed mix", fontsize=9)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", nargs="+", type=Path, required=True, help="study folders (results/ inside)")
    parser.add_argument("--baseline-folder", type=Path, help="where PyTorch fp32 ran (default: the first folder)")
    parser.add_argument("--out", type=Path, required=True, help="OUT.md and OUT.json to write")
    parser.add_argument("--figure", type=Path, help="the frontier figure (.png) to write")
    arguments = parser.parse_args(argv)
    from whisperbench.metrics import uncertainty

    found = [cell for folder in arguments.folders for cell in cells(folder)]
    base_folder = (arguments.baseline_folder or arguments.folders[0]).name
    baselines = {
        c["record"]["cell"]["model"]: uncertainty.utterance_errors(c["rows"])
        for c in found
        if c["folder"] == base_folder
        and (c["record"]["cell"]["backend"], c["record"]["cell"]["precision"]) == ("pytorch", "fp32")
    }
    rows = [row(cell, baselines.get(cell["record"]["cell"]["model"])) for cell in found]
    rows.sort(key=lambda r: (r["model"], r["backend"], r["precision"], r["budget"] or 0, r["study"]))
    columns = COLUMNS + [column for column in SPEED if any(r[column] != "" for r in rows)]
    table = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    table += "".join("| " + " | ".join(str(r[c]) for c in columns) + " |\n" for r in rows)
    write_record(arguments.out, {"rows": [{c: r[c] for c in columns} for r in rows], "draws": DRAWS}, table)
    if arguments.figure:
        figure(rows, arguments.figure)


if __name__ == "__main__":
    main()
