"""The notes under the trade-off table: how each column was measured, and what this study's cells have in
common or apart (threads, repeats, weights, baselines, shrunk sets, calibration)."""

from __future__ import annotations

from whisperbench.backends import registry


def table_notes(metrics) -> str:
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
