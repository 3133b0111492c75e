"""The README's results table: chosen columns of a finished study's summary, one dataset, as Markdown.

    python benchmarks/readme_excerpt.py --summary results/summary.csv --dataset librispeech-test-other

It reads only results/summary.csv (what the report step wrote) and shows it as the report's Markdown
does: intervals as [low, high], a ΔWER whose paired interval excludes 0 marked with *.
"""

from __future__ import annotations

import argparse

from whisperbench.report import formats, summary

COLUMNS = [
    "model",
    "backend",
    "precision",
    "size_mb",
    "wer_pct",
    "wer_ci",
    "delta_wer_pct",
    "delta_ci",
    "rtfx",
    "timing_cv_pct",
    "encoder_ms",
    "first_token_ms",
    "decoder_ms_per_token",
    "peak_rss_mb",
    "peak_rss_loading_mb",
    "agreement_pct",
    "parity_pct",
    "timing_flags",
]


def excerpt(summary_csv: str, dataset: str) -> str:
    import pandas as pd

    frame = pd.read_csv(summary_csv)
    frame = frame[frame["dataset"] == dataset]
    shown = formats.displayed(formats.rounded(frame))
    shown = shown[[column for column in COLUMNS if column in shown.columns]]
    header = [summary.LABELS.get(column, column) for column in shown.columns]
    text_columns = {"model", "backend", "precision", "wer_ci", "delta_ci", "timing_flags"}
    rule = ["---" if column in text_columns else "---:" for column in shown.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(value) else str(value) for value in row) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--summary", default="results/summary.csv")
    arguments.add_argument("--dataset", required=True)
    arguments = arguments.parse_args()
    print(excerpt(arguments.summary, arguments.dataset), end="")


if __name__ == "__main__":
    main()
