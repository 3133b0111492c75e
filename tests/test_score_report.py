import pytest

from whisperbench.metrics.score import score, speed, word_errors
from whisperbench.report import plots, summary


def _row(ref, hyp, audio_s=2.0, total_ms=500.0, n_tokens=11, decode_ms=100.0):
    return {
        "reference": ref,
        "hypothesis": hyp,
        "audio_s": audio_s,
        "total_ms": total_ms,
        "n_tokens": n_tokens,
        "decode_ms": decode_ms,
        "features_ms": 5.0,
        "encoder_ms": 300.0,
        "first_token_ms": 400.0,
        "all_runs_same_text": True,
    }


def test_wer_normalizes_both_sides_with_whispers_english_normalizer():
    rows = [
        _row(
            "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES", " Mr. Quilter is the apostle of the middle classes."
        ),
        _row("IT COST TWENTY DOLLARS", "It cost $20."),
    ]
    result = word_errors(rows)
    assert result["wer"] == 0.0 and result["reference_words"] == 12


def test_wer_counts_errors():
    result = word_errors([_row("A MAN SAID TO THE UNIVERSE SIR", "a man said to universe sir i exist")])
    assert (result["deletions"], result["insertions"], result["substitutions"]) == (1, 2, 0)
    assert result["wer"] == pytest.approx(3 / 7)


def test_speed_is_total_compute_over_total_audio():
    result = speed([_row("A", "a", audio_s=2.0, total_ms=500.0), _row("B", "b", audio_s=6.0, total_ms=1500.0)])
    assert result["rtf"] == pytest.approx(0.25) and result["rtfx"] == pytest.approx(4.0)
    assert result["decoder_ms_per_token"] == pytest.approx(10.0)  # 200 ms over 20 steps after the first token


def _metrics(model, precision, size, wer, rtfx, dataset="librispeech-test-clean", synthetic=False):
    run = {
        "cell": {"dataset": dataset, "model": model, "backend": "pytorch", "precision": precision},
        "artifact": {"size_bytes": size * 1e6, "library": "torch"},
        "weights": {"n_parameters": 39e6},
        "peak_rss_mb": 600.0,
        "threads": 2,
        "repeats": 3,
        "warmup": 1,
        "synthetic": synthetic,
    }
    metrics = score([_row("A B C D", "a b c d")], run)
    metrics.update(wer=wer, rtfx=rtfx, rtf=1 / rtfx)
    return metrics


def test_summary_has_delta_wer_against_fp32_and_marks_synthetic(tmp_path):
    import pandas as pd

    frame = summary.table(
        pd.DataFrame(
            [
                _metrics("tiny.en", "fp32", 150, 0.05, 3.0),
                _metrics("tiny.en", "int8", 40, 0.06, 4.0),
                _metrics("tiny.en", "fp32", 150, 0.02, 3.0, dataset="tts", synthetic=True),
            ]
        )
    )
    int8 = frame[(frame.precision == "int8")].iloc[0]
    assert int8.delta_wer_pct == pytest.approx(1.0) and int8.wer_pct == pytest.approx(6.0)
    assert "tts (synthetic)" in set(frame.dataset)
    outputs = [tmp_path / n for n in ("s.csv", "s.md", "s.tex", "s.json")]
    summary.write_tables(frame, *outputs, notes="- note")
    assert "ΔWER" in outputs[1].read_text() and r"$\Delta$WER" in outputs[2].read_text()
    plot_files = [tmp_path / "wer_vs_size.png", tmp_path / "rtfx_vs_size.pdf"]
    plots.write_plots(frame, plot_files)
    assert all(p.stat().st_size > 1000 for p in plot_files)


def test_pareto_front():
    points = [(10, 5.0), (20, 4.0), (30, 4.5), (40, 3.0), (15, 6.0)]
    assert plots.pareto_front(points, maximize_y=False) == [(10, 5.0), (20, 4.0), (40, 3.0)]
    assert plots.pareto_front([(10, 1.0), (20, 3.0), (30, 2.0)], maximize_y=True) == [(10, 1.0), (20, 3.0)]


def test_labels_of_points_at_one_place_do_not_share_a_slot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.scatter([100, 100, 300], [5, 5, 9])
    plots._place_labels(axis, [(100, 5, "tiny.en fp32"), (100, 5, "tiny.en fp32"), (300, 9, "base fp32")])
    offsets = [text.xyann for text in axis.texts]
    assert len(axis.texts) == 3 and offsets[0] != offsets[1]
    plt.close(figure)
