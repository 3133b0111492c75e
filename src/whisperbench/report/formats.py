"""The trade-off table written out: CSV (rounded), Markdown and LaTeX (intervals beside their values), and
JSON (DVC metrics)."""

from __future__ import annotations

from pathlib import Path

from whisperbench.report.summary import INTERVALS, LABELS

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


def rounded(frame):
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

    shown = rounded(frame)
    write_text(csv_path, shown.to_csv(index=False))
    labelled = rounded(displayed(frame)).rename(columns=LABELS)
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
        for row in shown.itertuples(index=False)
    }
    write_json(json_path, cells)
