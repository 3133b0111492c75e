"""One row per cell: the trade-off table as CSV, Markdown, LaTeX and JSON (DVC metrics)."""

from __future__ import annotations

import math
from pathlib import Path

from whisperbench.backends import registry
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


DECIMALS = {
    "params_m": 1,
    "size_mb": 1,
    "weights_mb": 1,
    "bits_per_weight": 2,
    "mix_bits_per_weight": 2,
    "mix_high_groups": 0,
    "wer_pct": 2,
    "delta_wer_pct": 2,
    "wer_low_pct": 2,
    "wer_high_pct": 2,
    "delta_low_pct": 2,
    "delta_high_pct": 2,
    "rtf": 3,
    "rtfx": 2,
    "rtfx_batched": 2,
    "rtfx_iqr": 2,
    "timing_cv_pct": 1,
    "other_load_cores": 2,
    "agreement_pct": 1,
    "parity_pct": 1,
    "encoder_ms": 1,
    "first_token_ms": 1,
    "features_ms": 1,
    "first_step_ms": 1,
    "decode_ms": 1,
    "decoder_ms_per_token": 2,
    "peak_rss_mb": 0,
    "peak_rss_loading_mb": 0,
    "baseline_rss_mb": 0,
    "n_utterances": 0,
    "n_subset": 0,
    "n_timed": 0,
}
# Table headers and text cells as LaTeX: every special character escaped.
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_"}
LATEX_SPECIAL |= {"{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "Δ": r"$\Delta$"}


def _rounded(frame):
    return frame.round(DECIMALS)


def _interval(low, high) -> str | None:
    import pandas as pd

    return None if pd.isna(low) or pd.isna(high) else f"[{low:.2f}, {high:.2f}]"


def displayed(frame):
    """The table as Markdown and LaTeX show it: intervals as "[low, high]" beside their value, and a ΔWER
    whose paired interval excludes 0 marked with * (a difference the utterances support)."""
    import pandas as pd

    shown = frame.copy()
    for name, (low, high, _) in INTERVALS.items():
        shown[name] = [_interval(a, b) for a, b in zip(shown[low], shown[high], strict=True)]
    shown["delta_wer_pct"] = [
        None if pd.isna(delta) else f"{delta:+.2f}" + ("*" if a > 0 or b < 0 else "")
        for delta, a, b in zip(shown["delta_wer_pct"], shown["delta_low_pct"], shown["delta_high_pct"], strict=True)
    ]
    order = []
    for column in shown.columns:
        if column in ("wer_low_pct", "wer_high_pct", "delta_low_pct", "delta_high_pct", "wer_ci", "delta_ci"):
            continue
        order.append(column)
        if column in ("wer_pct", "delta_wer_pct"):
            order.append("wer_ci" if column == "wer_pct" else "delta_ci")
    return shown[order]


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(character, character) for character in str(text))


def _latex_cell(column: str, value) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "--"
    if column in DECIMALS and not isinstance(value, str):
        return f"{float(value):.{DECIMALS[column]}f}"
    return latex_escape(value)


def latex_table(frame) -> str:
    """A booktabs table (\\usepackage{booktabs}): fixed decimals per column, numbers right-aligned."""
    frame = displayed(frame)
    columns = [c for c in frame.columns if c not in ("status", "library")]
    align = "".join("r" if c in DECIMALS or c in INTERVALS else "l" for c in columns)
    lines = [
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(latex_escape(LABELS[c]) for c in columns) + r" \\",
    ]
    lines.append(r"\midrule")
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(_latex_cell(c, getattr(row, c)) for c in columns) + r" \\")
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}", ""])


def write_tables(frame, csv_path: Path, markdown_path: Path, latex_path: Path, json_path: Path, notes: str) -> None:
    import pandas as pd

    from whisperbench.io import write_json, write_text

    rounded = _rounded(frame)
    write_text(csv_path, rounded.to_csv(index=False))
    labelled = _rounded(displayed(frame)).rename(columns=LABELS)
    blanks = labelled.astype(object).where(labelled.notna(), None)  # a missing value is a blank cell, not "nan"
    markdown = blanks.to_markdown(index=False, floatfmt="g", missingval="")
    write_text(markdown_path, markdown + "\n\n" + notes + "\n")
    write_text(latex_path, latex_table(frame))
    cells = {
        f"{row.dataset}/{row.model}/{row.backend}/{row.precision}": {
            key: (None if pd.isna(value) else value)
            for key, value in row._asdict().items()
            if key not in ("dataset", "model", "backend", "precision")
        }
        for row in rounded.itertuples(index=False)
    }
    write_json(json_path, cells)


def notes(metrics) -> str:
    lines = [
        "WER: jiwer after Whisper's English normalizer on both sides; greedy decoding, no timestamps; every "
        "utterance of the dataset once (accuracy pass, batched). utts / of: utterances evaluated / in the "
        "subset (the rest are longer than the backend can decode).",
        "Speed and memory come from the timing pass on the first `timed` utterances of each dataset, alone on "
        "the machine, batch size 1: RTF = compute time / audio time (RTFx = 1/RTF); encoder and first-token "
        "times are medians over utterances of per-utterance medians over repeats, after warm-ups; decoder "
        "ms/token = decode time after the first token / decoder steps; peak MB = peak RSS of the timing process while "
        "transcribing, load MB = its peak while importing and loading the model.",
        "agree %: timed utterances whose batch-1 transcript equals the accuracy pass's batched one "
        "(status flags a cell below 99 %). = ref %: evaluated utterances whose transcript equals the "
        "`report.parity_reference` cell's (same dataset and model).",
    ]
    lines.append(
        f"Threads: {_values(metrics, 'threads')}; repeats: {_values(metrics, 'repeats')}; "
        f"warm-ups: {_values(metrics, 'warmup')}; accuracy batch size: {_values(metrics, 'batch_size')}."
    )
    lines += shrunk_sets(metrics)
    lines += _other_baselines(metrics)
    peers = sorted(b for b in metrics["backend"].unique() if b in registry.BACKENDS and registry.get(b).peer)
    if peers:
        lines.append(
            f"Peer runtimes (what users would otherwise deploy; hollow markers in the plots): {', '.join(peers)}."
        )
    if metrics.get("batch_fallback") is not None and metrics["batch_fallback"].fillna(False).astype(bool).any():
        lines.append("A batch failed in some cells' accuracy pass; they were finished one utterance at a time.")
    if metrics["synthetic"].any():
        lines.append("Rows marked (synthetic) ran on TTS speech: compare them with each other, not with LibriSpeech.")
    lines += _weight_notes(metrics)
    return "\n".join(f"- {line}" for line in lines)


def _weight_notes(metrics) -> list[str]:
    """Random weights (no WER) and weights stored in half precision (the fp32 cells' inputs were rounded)."""
    lines = []
    if "weights" in metrics and (metrics["weights"] == "random").any():
        lines.append(
            "weights random: shape-true random weights at the model's published architecture; WER, ΔWER, agree % "
            "and = ref % are empty (noise has no transcript), and each timed utterance decodes as many tokens as "
            "its reference has (forced length), so speed, memory and size describe a real transcript's work."
        )
    if "stored_dtypes" in metrics:
        half = sorted({m for m, d in zip(metrics["model"], metrics["stored_dtypes"], strict=True) if d == "float16"})
        if half:
            lines.append(
                f"{', '.join(half)}: the weights are stored in float16 (as the hub stores them), so their fp32 "
                "cells compute in fp32 from fp16-rounded weights."
            )
    return lines


def _other_baselines(metrics) -> list[str]:
    """Which backends take ΔWER against another precision than `report.baseline_precision`."""
    if "baseline" not in metrics:
        return []
    other = sorted(
        {f"{b} against {p}" for b, p in zip(metrics["backend"], metrics["baseline"], strict=True) if isinstance(p, str)}
    )
    return [f"ΔWER for backends without the baseline precision: {', '.join(other)}."] if other else []


def shrunk_sets(metrics) -> list[str]:
    """A note for every set smaller than params asked for: a dataset, its timed subset, a calibration."""
    lines = set()
    for row in metrics.to_dict("records"):
        cell = f"{row['model']} {row['backend']} {row['precision']}"
        for got, asked, what in (
            ("n_subset", "n_asked", f"{row['dataset']}: {{got}} utterances of the {{asked}} asked"),
            ("n_timed", "n_timed_asked", f"{row['dataset']}: {{got}} timed utterances of the {{asked}} asked"),
            ("n_calibration", "n_calibration_asked", f"{cell}: calibrated on {{got}} clips of the {{asked}} asked"),
        ):
            if _number(row.get(asked)) and _number(row.get(got)) is not None and row[got] < row[asked]:
                lines.add(what.format(got=int(row[got]), asked=int(row[asked])))
    return [f"Smaller than asked: {line}." for line in sorted(lines)] + _calibrated(metrics)


def _calibrated(metrics) -> list[str]:
    """How many clips each calibrated artifact saw (from its artifact.json, through the pass records)."""
    if "n_calibration" not in metrics:
        return []
    counts = {
        f"{row['model']} {row['backend']} {row['precision']} on {int(row['n_calibration'])}": None
        for row in metrics.dropna(subset=["n_calibration"]).to_dict("records")
    }
    return [f"Calibrated (clips of the `calibration` set): {'; '.join(sorted(counts))}."] if counts else []


def _number(value):
    import pandas as pd

    return None if value is None or pd.isna(value) else value


def _values(metrics, column: str) -> str:
    if column not in metrics:
        return "n/a"
    values = sorted({int(value) for value in metrics[column].dropna()})  # failed cells have none
    return ", ".join(str(value) for value in values) or "n/a"
