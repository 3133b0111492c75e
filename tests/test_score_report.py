import pytest

from whisperbench.metrics.score import score, speed, word_errors
from whisperbench.report import axes, formats, notes, plots, summary


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


def _records(model="tiny.en", precision="fp32", size=150, dataset="librispeech-test-clean", synthetic=False):
    cell = {"dataset": dataset, "model": model, "backend": "pytorch", "precision": precision}
    accuracy = {
        "cell": cell,
        "status": "ok",
        "artifact": {"size_bytes": size * 1e6, "library": "torch"},
        "weights": {"n_parameters": 39e6},
        "batch_size": 8,
        "batch_fallback": None,
        "synthetic": synthetic,
    }
    timing = {"cell": cell, "status": "ok", "threads": 2, "repeats": 3, "warmup": 1}
    return accuracy, timing | {"peak_rss_mb": 600.0, "peak_rss_loading_mb": 550.0, "throughput": None}


def _timed(utterance_id, hypothesis, **fields):
    return {"id": utterance_id, **_row("", hypothesis, **fields)}


def _metrics(model, precision, size, wer, rtfx, dataset="librispeech-test-clean", synthetic=False):
    hypotheses = [{"id": "u1", **_row("A B C D", "a b c d")}]
    metrics = score(
        hypotheses,
        *_records(model, precision, size, dataset, synthetic)[:1],
        [_timed("u1", "a b c d")],
        _records(model, precision, size, dataset, synthetic)[1],
    )
    metrics.update(wer=wer, rtfx=rtfx, rtf=1 / rtfx)
    return metrics


def test_wer_from_the_accuracy_pass_speed_from_the_timing_pass_and_their_agreement():
    hypotheses = [
        {"id": "u1", **_row("A B C D", "a b c d")},
        {"id": "u2", **_row("E F", "e x")},
        {"id": "u3", "reference": "LONG", "audio_s": 31.0, "skipped": "longer than 30 s"},
    ]
    timings = [_timed("u1", "a b c d", audio_s=2.0, total_ms=1000.0), _timed("u2", "e f", audio_s=2.0, total_ms=1000.0)]
    metrics = score(hypotheses, *_records()[:1], timings, _records()[1])
    assert metrics["wer"] == pytest.approx(1 / 6) and metrics["n_utterances"] == 2 and metrics["n_subset"] == 3
    assert metrics["rtfx"] == pytest.approx(2.0) and metrics["n_timed"] == 2
    assert metrics["agreement"] == 0.5 and metrics["differing_ids"] == ["u2"]
    assert metrics["status"].startswith("check: batched and single transcripts agree on 50 %")
    agreeing = [_timed("u1", "a b c d"), _timed("u2", "e x")]
    assert score(hypotheses, *_records()[:1], agreeing, _records()[1])["status"] == "ok"


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
    formats.write_tables(frame, *outputs, notes="- note")
    assert "ΔWER" in outputs[1].read_text() and r"$\Delta$WER" in outputs[2].read_text()
    plot_files = [tmp_path / "wer_vs_size.png", tmp_path / "rtfx_vs_size.pdf"]
    plots.write_plots(frame, plot_files)
    assert all(p.stat().st_size > 1000 for p in plot_files)


def test_a_backend_without_the_baseline_precision_takes_its_delta_against_its_largest_artifact():
    import pandas as pd

    rows = [
        _metrics("tiny.en", "fp32", 150, 0.05, 3.0) | {"backend": "pytorch"},
        _metrics("tiny.en", "f16", 78, 0.05, 3.0) | {"backend": "whispercpp"},
        _metrics("tiny.en", "q8_0", 44, 0.07, 3.0) | {"backend": "whispercpp"},
    ]
    metrics = pd.DataFrame(rows)
    assert summary.baselines(metrics, "fp32") == {
        ("librispeech-test-clean", "tiny.en", "pytorch"): "fp32",
        ("librispeech-test-clean", "tiny.en", "whispercpp"): "f16",
    }
    frame = summary.table(metrics)
    q8 = frame[frame.precision == "q8_0"].iloc[0]
    assert q8.delta_wer_pct == pytest.approx(2.0)  # against whisper.cpp's f16, not PyTorch's fp32
    assert frame[frame.precision == "f16"].iloc[0].delta_wer_pct == pytest.approx(0.0)


def test_pareto_front():
    points = [(10, 5.0), (20, 4.0), (30, 4.5), (40, 3.0), (15, 6.0)]
    assert plots.pareto_front(points, maximize_y=False) == [(10, 5.0), (20, 4.0), (40, 3.0)]
    assert plots.pareto_front([(10, 1.0), (20, 3.0), (30, 2.0)], maximize_y=True) == [(10, 1.0), (20, 3.0)]


def test_labels_of_points_at_one_place_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.scatter([100, 100, 300], [5, 5, 9])
    axes.place_labels(axis, [(100, 5, "tiny.en fp32 PT"), (100, 5, "tiny.en fp32 ORT"), (300, 9, "base fp32")])
    renderer = figure.canvas.get_renderer()
    labels = [text for text in axis.texts if text.get_text()]  # the rest are the lines to the points
    first, second = (text.get_window_extent(renderer) for text in labels[:2])
    assert len(labels) == 3 and not first.overlaps(second)
    plt.close(figure)


def test_every_figure_is_drawn_with_plain_log_ticks(tmp_path):
    import pandas as pd

    rows = [_metrics("tiny.en", "fp32", 150, 0.05, 3.0), _metrics("tiny.en", "int8", 40, 0.06, 4.0)]
    rows += [_metrics("base", "fp32", 290, 0.04, 1.5)]
    metrics = pd.DataFrame(rows).assign(wer_low=[0.03, 0.04, 0.02], wer_high=[0.07, 0.08, 0.06])
    frame = summary.table(metrics)
    files = [tmp_path / f"{name}.png" for name in plots.FIGURES]
    plots.write_plots(frame, files)
    assert all(f.stat().st_size > 1000 for f in files)
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.plot([20, 400], [1, 2])
    axes.plain_log(axis, "x")
    figure.canvas.draw()
    ticks = [label.get_text() for label in axis.get_xticklabels() if label.get_text()]
    assert "50" in ticks and "100" in ticks and not any("^" in tick for tick in ticks)
    plt.close(figure)
    assert plots.pareto_front([(10, 5.0), (4, 3.0), (8, 9.0)], maximize_y=False, maximize_x=True) == [
        (10, 5.0),
        (4, 3.0),
    ]


def test_latex_table_escapes_every_text_cell_and_fixes_decimals(tmp_path):
    import re
    import shutil
    import subprocess

    import pandas as pd

    rows = [_metrics("tiny.en", "int8_dynamic", 66.9, 0.1447, 17812.345, dataset="ls_test&other")]
    rows.append(_metrics("tiny.en", "fp32", 155.9, 0.1342, 14.3, dataset="ls_test&other"))
    latex = formats.latex_table(summary.table(pd.DataFrame(rows)))
    assert r"int8\_dynamic" in latex and r"ls\_test\&other" in latex and r"$\Delta$WER" in latex
    assert "17812.35" in latex and "e+" not in latex  # fixed decimals, never 1.781e+04
    assert r"\toprule" in latex and r"\bottomrule" in latex
    text_only = re.sub(r"\\[A-Za-z]+|\\[_&%$#{}]|\$\\Delta\$", "", latex)
    assert not re.search(r"[_&%$#]", text_only.replace(" & ", " ")), text_only  # none left unescaped
    engine = shutil.which("pdflatex")
    if engine is None:
        pytest.skip("no LaTeX engine here (Debian: texlive-latex-recommended); escaping checked above")
    document = "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + latex + "\\end{document}\n"
    (tmp_path / "table.tex").write_text(document)
    command = [engine, "-interaction=nonstopmode", "table.tex"]
    result = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]


def test_sets_smaller_than_asked_and_calibration_counts_are_in_the_summary_notes():
    import pandas as pd

    accuracy, timing = _records(precision="int8_static")
    accuracy |= {
        "n_asked": 200,
        "artifact": accuracy["artifact"] | {"calibration_ids": ["a", "b"], "calibration_asked": 8},
    }
    timing |= {"n_asked": 16}
    hypotheses = [{"id": "u1", **_row("A B", "a b")}]
    metrics = score(hypotheses, accuracy, [_timed("u1", "a b")], timing)
    assert (metrics["n_asked"], metrics["n_timed_asked"], metrics["n_calibration"]) == (200, 16, 2)
    text = notes.table_notes(pd.DataFrame([metrics, _metrics("tiny.en", "fp32", 150, 0.1, 5.0)]))
    assert "Smaller than asked: librispeech-test-clean: 1 utterances of the 200 asked." in text
    assert "librispeech-test-clean: 1 timed utterances of the 16 asked" in text
    assert "tiny.en pytorch int8_static: calibrated on 2 clips of the 8 asked" in text
    assert "Calibrated (clips of the `calibration` set): tiny.en pytorch int8_static on 2." in text


def test_a_cell_whose_speed_cannot_be_measured_here_says_why_and_has_no_speed():
    import pandas as pd

    accuracy, timing = _records(precision="pal4")
    accuracy |= {"runtime": {"numerics": "Core ML weights, PyTorch numerics"}}
    timing = {key: value for key, value in timing.items() if not key.startswith("peak")}
    timing |= {"speed_unavailable": "needs macOS (Core ML runs models only there)", "n_utterances": 0}
    metrics = score([{"id": "u1", **_row("A B", "a b")}], accuracy, [], timing)
    assert metrics["status"] == "ok; speed, memory: needs macOS (Core ML runs models only there)"
    assert metrics["rtfx"] is None and metrics["peak_rss_mb"] is None and metrics["wer"] == 0.0
    frame = summary.table(pd.DataFrame([metrics, _metrics("tiny.en", "fp32", 150, 0.1, 5.0)]))
    assert sorted(frame["numerics"].fillna("")) == ["", "Core ML weights, PyTorch numerics"]
    starred = frame[frame["precision"] == "pal4"].iloc[0]
    assert plots._label(starred).endswith("PT*")


def test_parity_is_the_share_of_transcripts_equal_to_the_reference_cells(tmp_path):
    import pandas as pd

    from whisperbench.io import write_jsonl

    cells = [("pytorch", "fp32"), ("ctranslate2", "fp32"), ("onnxruntime", "int4")]
    texts = {"pytorch": ["a", "b", "c", "d"], "ctranslate2": ["a", "b", "c", "x"], "onnxruntime": ["a", "y", "c", "x"]}
    paths = []
    for backend, _ in cells:
        paths.append(tmp_path / f"{backend}.jsonl")
        rows = [{"id": f"u{i}", "hypothesis": text} for i, text in enumerate(texts[backend])]
        write_jsonl(paths[-1], rows + [{"id": "long", "hypothesis": "", "skipped": "longer than 30 s"}])
    metrics = pd.DataFrame([{"dataset": "d", "model": "tiny.en", "backend": b, "precision": p} for b, p in cells])
    assert summary.parity(metrics, paths, "pytorch/fp32") == [1.0, 0.75, 0.5]
    assert summary.parity(metrics, paths, "coreml/fp32") == [None, None, None]
    assert summary.parity(metrics, paths, None) == [None, None, None]


def _counts(n: int, errors_every: int, words: int = 10) -> dict:
    """n utterances of `words` words; every `errors_every`-th one has 3 errors."""
    return {f"u{i}": (3 if i % errors_every == 0 else 0, words) for i in range(n)}


def test_identical_hypotheses_give_a_zero_delta_with_a_zero_width_interval():
    from whisperbench.metrics import uncertainty

    counts = _counts(40, 4)
    assert uncertainty.delta_interval(counts, dict(counts), draws=500, seed=0) == (0.0, 0.0)


def test_the_wer_interval_holds_the_wer_and_narrows_with_more_utterances():
    from whisperbench.metrics import uncertainty

    small = uncertainty.wer_interval(_counts(20, 4), draws=2000, seed=0)
    large = uncertainty.wer_interval(_counts(400, 4), draws=2000, seed=0)
    assert small[0] < 0.075 < small[1] and large[0] < 0.075 < large[1]  # 3 errors / 40 words
    assert large[1] - large[0] < 0.5 * (small[1] - small[0])  # about 1 / sqrt(20) as wide
    assert uncertainty.wer_interval(_counts(20, 4), draws=2000, seed=0) == small  # seeded


def test_a_paired_difference_is_marked_only_when_its_interval_excludes_zero(tmp_path):
    import pandas as pd

    from whisperbench.io import write_jsonl

    references = [f"word{i} alpha beta gamma" for i in range(30)]
    texts = {
        "fp32": references,
        "int8": [r.replace("gamma", "delta") if i % 3 == 0 else r for i, r in enumerate(references)],  # 10 errors
        "int4": [r.replace("gamma", "delta") if i == 0 else r for i, r in enumerate(references)],  # 1 error
    }
    paths = []
    for precision, hypotheses in texts.items():
        paths.append(tmp_path / f"{precision}.jsonl")
        rows = [
            {"id": f"u{i}", "reference": r, "hypothesis": h}
            for i, (r, h) in enumerate(zip(references, hypotheses, strict=True))
        ]
        write_jsonl(paths[-1], rows)
    metrics = pd.DataFrame([_metrics("tiny.en", p, 100, 0.0, 3.0) for p in texts])
    summary.intervals(metrics, paths, "fp32", {"draws": 1000, "seed": 0, "confidence": 0.95})
    assert pd.isna(metrics["delta_low"].iloc[0]) and metrics["wer_low"].iloc[0] == 0.0
    assert metrics["delta_low"].iloc[1] > 0 and metrics["delta_low"].iloc[2] <= 0 <= metrics["delta_high"].iloc[2]
    metrics["wer"] = [0.0, 10 / 120, 1 / 120]
    frame = summary.table(metrics)
    shown = formats.displayed(frame).set_index("precision")
    assert shown.loc["int8", "delta_wer_pct"] == "+8.33*" and shown.loc["int4", "delta_wer_pct"] == "+0.83"
    assert shown.loc["int8", "wer_ci"].startswith("[") and list(frame.columns).index("wer_low_pct") > 0
    outputs = [tmp_path / n for n in ("s.csv", "s.md", "s.tex", "s.json")]
    formats.write_tables(frame, *outputs, notes="- note")
    assert "ΔWER 95 % CI" in outputs[1].read_text() and "+8.33*" in outputs[2].read_text()
    assert "delta_low_pct" in outputs[0].read_text().splitlines()[0]


def test_noisy_repeats_and_a_busy_machine_are_flagged():
    from whisperbench.metrics.score import timing_spread

    steady = [{"audio_s": 4.0, "total_ms_runs": [1000.0, 1010.0, 990.0]} for _ in range(4)]
    quiet = timing_spread(steady, {"other_load_cores": 0.02})
    assert quiet["timing_cv"] < 0.01 and quiet["timing_flags"] is None and quiet["rtfx_iqr"] < 0.05
    noisy = [{"audio_s": 4.0, "total_ms_runs": [1000.0, 1400.0, 700.0]} for _ in range(4)]
    flagged = timing_spread(noisy, {"other_load_cores": 1.1})
    assert flagged["timing_cv"] > 0.05 and flagged["rtfx_iqr"] > 1.0
    assert (
        "noisy" in flagged["timing_flags"] and "contended (other processes used 1.10 cores)" in flagged["timing_flags"]
    )


def test_other_load_measures_the_rest_of_the_machine():
    from whisperbench.metrics import provenance

    with provenance.OtherLoad() as others:
        sum(i * i for i in range(200_000))  # this process's own work is not counted
    assert others.record["other_load_cores"] >= 0 and len(others.record["load_average_1min"]) == 2


def test_random_weight_cells_keep_speed_and_leave_wer_empty_with_the_reason(tmp_path):
    import pandas as pd

    from whisperbench.evaluate import RANDOM_WEIGHTS

    accuracy, timing = _records("large-v3", "fp32", 6200)
    accuracy |= {"wer_unavailable": RANDOM_WEIGHTS, "n_asked": 2}
    accuracy["weights"] |= {"random_weights": {"seed": 0}, "stored_dtypes": ["float16"]}
    timings = [_timed("u1", "noise", total_ms=4000.0) | {"forced_tokens": 11}]
    metrics = score([], accuracy, timings, timing)
    assert metrics["status"] == f"ok; WER: {RANDOM_WEIGHTS}" and metrics["wer"] is None
    assert metrics["weights"] == "random" and metrics["rtfx"] == pytest.approx(0.5) and metrics["agreement"] is None
    real = _metrics("tiny.en", "fp32", 150, 0.1, 5.0)
    frame = summary.table(pd.DataFrame([metrics, real]))
    assert frame.weights[0] == "random" and pd.isna(frame.weights[1]) and pd.isna(frame.wer_pct[0])
    text = notes.table_notes(pd.DataFrame([metrics, real]))
    assert "weights random: shape-true random weights" in text and "Smaller than asked" not in text
    assert "large-v3: the weights are stored in float16" in text
    plots.write_plots(frame, [tmp_path / "wer_vs_size.png", tmp_path / "rtfx_vs_size.png"])


def test_an_encoder_cut_before_the_cross_attention_kv_is_flagged_and_marked_in_the_latency_figure():
    """One cut point for every backend: where a runtime's API hides the K/V inside generation (CTranslate2),
    its cells say so in the table and carry † in the latency figure, whose caption defines the cut."""
    from types import SimpleNamespace

    from whisperbench.metrics.score import CROSS_KV_ELSEWHERE, timing_spread
    from whisperbench.report import plots

    rows = [{"audio_s": 4.0, "total_ms_runs": [1000.0, 1001.0]}]
    assert timing_spread(rows, {}, "ctranslate2")["timing_flags"] == CROSS_KV_ELSEWHERE
    assert timing_spread(rows, {}, "onnxruntime")["timing_flags"] is None
    cell = {"model": "tiny.en", "precision": "int8", "numerics": None}
    assert plots._stage_label(SimpleNamespace(backend="ctranslate2", **cell)) == "tiny.en int8 CT2 †"
    assert plots._stage_label(SimpleNamespace(backend="pytorch", **cell)) == "tiny.en int8 PT"
    assert "cross-attention K/V" in plots.CUT_POINT_CAPTION
