"""One row per cell: the trade-off table as CSV, Markdown, LaTeX and JSON (DVC metrics)."""

from __future__ import annotations

import math
from pathlib import Path

from whisperbench.io import read_json

COLUMNS = {
    "dataset": "dataset",
    "model": "model",
    "params_m": "params (M)",
    "weights": "weights",
    "backend": "backend",
    "precision": "precision",
    "library": "library",
    "size_mb": "size MB",
    "weights_mb": "weights MB",
    "bits_per_weight": "bits/w",
    "mix_bits_per_weight": "mix bits/w",
    "mix_high_groups": "8-bit groups",
    "wer_pct": "WER %",
    "wer_low_pct": "WER low",
    "wer_high_pct": "WER high",
    "delta_wer_pct": "ΔWER",
    "delta_low_pct": "ΔWER low",
    "delta_high_pct": "ΔWER high",
    "rtf": "RTF",
    "rtfx": "RTFx",
    "encoder_ms": "encoder ms",
    "first_token_ms": "first token ms",
    "features_ms": "features ms",
    "first_step_ms": "first step ms",
    "decode_ms": "decode ms",
    "decoder_ms_per_token": "decoder ms/token",
    "rtfx_iqr": "RTFx IQR",
    "timing_cv_pct": "CV %",
    "other_load_cores": "others (cores)",
    "rtfx_batched": "RTFx batched",
    "numerics": "numerics",
    "peak_rss_mb": "peak MB",
    "peak_rss_loading_mb": "load MB",
    "baseline_rss_mb": "base MB",
    "n_utterances": "utts",
    "n_subset": "of",
    "n_timed": "timed",
    "agreement_pct": "agree %",
    "parity_pct": "= ref %",
    "timing_flags": "timing",
    "status": "status",
}
# Markdown and LaTeX show each interval as one "[low, high]" column (CSV and JSON keep the numbers).
INTERVALS = {
    "wer_ci": ("wer_low_pct", "wer_high_pct", "WER 95 % CI"),
    "delta_ci": ("delta_low_pct", "delta_high_pct", "ΔWER 95 % CI"),
}
LABELS = COLUMNS | {name: label for name, (_, _, label) in INTERVALS.items()}
# Shown only when some cell has them (random weights; timing.throughput; another's numerics; a parity reference;
# a timing flag).
OPTIONAL = (
    "weights",
    "rtfx_batched",
    "numerics",
    "parity_pct",
    "timing_flags",
    "mix_bits_per_weight",
    "mix_high_groups",
)


NUMERIC = {
    "wer",
    "wer_low",
    "wer_high",
    "delta_low",
    "delta_high",
    "n_parameters",
    "size_mb",
    "weights_mb",
    "bits_per_weight",
    "mix_bits_per_weight",
    "mix_high_groups",
    "rtf",
    "rtfx",
    "encoder_ms",
    "first_token_ms",
    "features_ms",
    "first_step_ms",
    "decode_ms",
    "decoder_ms_per_token",
    "peak_rss_mb",
    "peak_rss_loading_mb",
    "baseline_rss_mb",
    "n_utterances",
    "n_subset",
    "n_timed",
    "agreement",
    "parity",
    "rtfx_batched",
    "rtfx_iqr",
    "timing_cv",
    "other_load_cores",
}


def parity(metrics, hypotheses_paths: list[str | Path], reference: str | None) -> list[float | None]:
    """Per cell: the share of its evaluated utterances whose transcript equals the reference cell's
    (`report.parity_reference`, backend/precision, same dataset and model); None without one."""
    from whisperbench.io import read_jsonl

    texts = [
        # leading/trailing spaces differ between runtimes' detokenizers and mean nothing
        {row["id"]: row["hypothesis"].strip() for row in read_jsonl(path) if "skipped" not in row}
        for path in hypotheses_paths
    ]
    cells = list(zip(metrics["dataset"], metrics["model"], metrics["backend"], metrics["precision"], strict=True))
    by_cell = dict(zip(cells, texts, strict=True))
    shares = []
    for (dataset, model, _, _), own in zip(cells, texts, strict=True):
        backend, _, precision = (reference or "/").partition("/")
        theirs = by_cell.get((dataset, model, backend, precision))
        common = sorted(set(own) & set(theirs)) if theirs else []
        shares.append(sum(own[i] == theirs[i] for i in common) / len(common) if common else None)
    return shares


def baselines(metrics, baseline_precision: str) -> dict[tuple[str, str, str], str]:
    """(dataset, model, backend) -> the precision its ΔWER is taken against: `report.baseline_precision`, or,
    for a backend without it (whisper.cpp has no fp32), its largest artifact (whisper.cpp: f16)."""
    chosen: dict[tuple[str, str, str], tuple[bool, float, str]] = {}
    for row in metrics.itertuples(index=False):
        key, size = (row.dataset, row.model, row.backend), getattr(row, "size_mb", None)
        known = size is not None and not math.isnan(size)  # a failed cell has no size
        rank = (row.precision == baseline_precision, size if known else -1.0, row.precision)
        chosen[key] = max(chosen.get(key, rank), rank)
    return {key: precision for key, (_, _, precision) in chosen.items()}


def intervals(
    metrics, hypotheses_paths: list[str | Path], baseline_precision: str, bootstrap: dict, against: dict | None = None
) -> None:
    """Add each cell's 95 % bootstrap interval of WER, and of ΔWER against its baseline cell (same dataset,
    model and backend; `against`, by default `baselines`) paired over the same utterances (fractions, like wer)."""
    from whisperbench.io import read_jsonl
    from whisperbench.metrics import uncertainty

    counts = [uncertainty.utterance_errors(read_jsonl(path)) for path in hypotheses_paths]
    cells = list(zip(metrics["dataset"], metrics["model"], metrics["backend"], metrics["precision"], strict=True))
    by_cell = dict(zip(cells, counts, strict=True))
    against = against or baselines(metrics, baseline_precision)
    draws, seed, level = bootstrap["draws"], bootstrap["seed"], bootstrap["confidence"]
    columns = {name: [] for name in ("wer_low", "wer_high", "delta_low", "delta_high")}
    for (dataset, model, backend, precision), own in zip(cells, counts, strict=True):
        wer = uncertainty.wer_interval(own, draws, seed, level)
        reference = against[(dataset, model, backend)]
        baseline = by_cell.get((dataset, model, backend, reference))
        delta = None
        if baseline is not None and precision != reference:
            delta = uncertainty.delta_interval(own, baseline, draws, seed, level)
        for name, pair in (("wer", wer), ("delta", delta)):
            columns[f"{name}_low"].append(pair[0] if pair else None)
            columns[f"{name}_high"].append(pair[1] if pair else None)
    for name, values in columns.items():
        metrics[name] = values


def load_metrics(paths: list[str | Path]):
    import pandas as pd

    rows = [read_json(path) for path in paths]
    return pd.DataFrame(rows)


def table(metrics, baseline_precision: str = "fp32", against: dict | None = None):
    """The summary table: WER in %, ΔWER against the baseline precision of the same model/backend/dataset
    (`against`, by default `baselines`)."""
    import pandas as pd

    # Failed cells (status "failed: <reason>") have no numbers: their columns are missing or None.
    frame = metrics.reindex(columns=sorted(set(metrics.columns) | NUMERIC)).copy()
    for column in NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("wer", "wer_low", "wer_high", "delta_low", "delta_high", "timing_cv"):
        frame[f"{column}_pct"] = frame[column] * 100
    frame["agreement_pct"] = frame["agreement"] * 100
    frame["parity_pct"] = frame["parity"] * 100
    frame["params_m"] = frame["n_parameters"] / 1e6
    against = against or baselines(frame, baseline_precision)
    cells = zip(frame["dataset"], frame["model"], frame["backend"], frame["precision"], strict=True)
    wer_of = dict(zip(cells, frame["wer_pct"], strict=True))
    keys = list(zip(frame["dataset"], frame["model"], frame["backend"], strict=True))
    frame["delta_wer_pct"] = [
        wer - wer_of.get((*key, against[key]), math.nan) for wer, key in zip(frame["wer_pct"], keys, strict=True)
    ]
    frame["dataset"] = [
        f"{d} (synthetic)" if s and "synthetic" not in d else d
        for d, s in zip(frame["dataset"], frame["synthetic"], strict=True)
    ]
    frame = frame.sort_values(["dataset", "model", "backend", "size_mb"], ascending=[True, True, True, False])
    columns = [c for c in COLUMNS if c not in OPTIONAL or (c in frame and frame[c].notna().any())]
    return frame.reindex(columns=columns).reset_index(drop=True)
