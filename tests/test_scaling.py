"""benchmarks/scaling.py: the fitted exponents and the staged run's configs."""

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def scaling():
    return load_benchmark("scaling")


def _metrics(folder: Path, model: str, backend: str, precision: str, params: float, encoder_ms: float) -> None:
    cell = folder / "results" / "d" / model / backend / precision
    cell.mkdir(parents=True)
    record = {"model": model, "backend": backend, "precision": precision, "status": "ok", "n_parameters": params}
    record |= {"encoder_ms": encoder_ms, "decoder_ms_per_token": None, "rtfx": 2.0, "peak_rss_mb": 100.0}
    (cell / "metrics.json").write_text(json.dumps(record | {"size_mb": params * 4e-6}))


def test_exponents_are_the_log_log_slopes_at_each_backends_reference_precision(scaling, tmp_path):
    for model, params in (("tiny", 1e7), ("small", 1e8), ("large-v3", 1e9)):
        _metrics(tmp_path, model, "onnxruntime", "fp32", params, 1e-6 * params**1.5)
        _metrics(tmp_path, model, "onnxruntime", "int4", params, 1.0)  # not the reference: not fitted
        _metrics(tmp_path, model, "whispercpp", "f16", params, 1e-3 * params)
    # off the ladder (2 decoder layers of 32): in the table, not in the fit
    _metrics(tmp_path, "distil-large-v3", "onnxruntime", "fp32", 7e8, 1.0)
    rows = scaling.cells(tmp_path)
    assert [r["params_m"] for r in rows][:3] == [10.0, 10.0, 10.0] and rows[0]["build_s"] is None
    fitted = scaling.exponents(rows)
    assert fitted["onnxruntime"]["encoder_ms"] == pytest.approx(1.5)
    assert fitted["whispercpp"]["encoder_ms"] == pytest.approx(1.0)
    assert fitted["onnxruntime"]["size_mb"] == pytest.approx(1.0) and fitted["onnxruntime"]["rtfx"] == pytest.approx(0)
    assert fitted["onnxruntime"]["decoder_ms_per_token"] is None  # no points
    scaling.report(tmp_path, tmp_path / "out" / "scaling")
    table = (tmp_path / "out" / "scaling.md").read_text()
    assert (tmp_path / "out" / "scaling.png").is_file() and "| onnxruntime | 1.5" in table
    assert "| distil-large-v3 | 700 | onnxruntime | fp32 |" in table


def test_stage_configs_hold_one_model_and_leave_out_the_dropped_pairs(scaling):
    config = {
        "models": ["large-v3", "tiny"],
        "backends": {"coreml": {"precisions": ["fp32", "pal4"]}, "x": {"precisions": ["q"]}},
    }
    dropped = scaling._dropped(config, ["coreml:pal4", "x:q"])
    assert dropped["backends"] == {"coreml": {"precisions": ["fp32"]}}
    assert sorted(config["models"], key=lambda m: scaling._params_m(m, config)) == ["tiny", "large-v3"]
    assert scaling._params_m("my-folder", config) == math.inf


def test_per_backend_stages_and_pruning_keep_only_the_records(scaling, tmp_path):
    config = {
        "models": ["base", "tiny"],
        "backends": {"pytorch": {"precisions": ["fp32", "int8"]}, "x": {"precisions": ["q"]}},
    }
    names = [name for name, _ in scaling.stages(config, None, ["x:q"], per_backend=True)]
    assert names == ["tiny-pytorch", "base-pytorch"]
    only_q = scaling.stages(config | {"report": {"baseline_precision": "fp32"}}, ["tiny"], [], per_backend=True)[1][1]
    assert only_q["report"]["baseline_precision"] == "q"  # a backend without fp32 reports against its own
    folder = tmp_path / "data" / "artifacts" / "tiny" / "pytorch" / "int8"
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "model.bin").write_bytes(b"0" * 10)
    (folder / "artifact.json").write_text("{}")
    (folder / "artifact.json").write_text('{"build_s": 3.5}')
    scaling.prune(tmp_path, scaling.stages(config, ["tiny"], [], per_backend=True)[0][1])
    assert [p.name for p in folder.rglob("*")] == ["artifact.json"]
    shutil.rmtree(folder)  # what the workflow does to a folder whose files are missing, before it plans
    row = {"model": "tiny", "backend": "pytorch", "precision": "int8"}
    assert scaling._build_cost(tmp_path, row)["build_s"] == 3.5  # from the record's copy


def test_build_costs_whose_records_are_gone_come_from_an_earlier_report(scaling, tmp_path):
    cell = tmp_path / "results" / "clean" / "tiny" / "pytorch" / "fp32"
    cell.mkdir(parents=True)
    (cell / "metrics.json").write_text(
        json.dumps({"model": "tiny", "backend": "pytorch", "precision": "fp32", "status": "ok", "n_parameters": 4e7})
    )
    earlier = tmp_path / "earlier.json"
    cost = {"build_s": 4.4, "build_peak_rss_mb": 591.0, "export_s": None, "export_peak_rss_mb": None}
    earlier.write_text(json.dumps({"cells": [{"model": "tiny", "backend": "pytorch", "precision": "fp32"} | cost]}))
    assert scaling.cells(tmp_path)[0]["build_s"] is None
    assert scaling.cells(tmp_path, [earlier])[0]["build_s"] == 4.4


def test_a_backend_re_run_alone_joins_the_earlier_reports_other_rows(scaling, tmp_path):
    _metrics(tmp_path, "tiny", "pytorch", "fp32", 4e7, 300.0)  # re-run after a fix
    _metrics(tmp_path, "tiny", "onnxruntime", "fp32", 4e7, 250.0)  # a same-machine anchor, reported apart
    earlier = tmp_path / "scaling-old.json"
    old = [{"model": "tiny", "backend": b, "precision": "fp32", "params_m": 40.0, "encoder_ms": 900.0} for b in "xy"]
    old.append({"model": "tiny", "backend": "pytorch", "precision": "fp32", "params_m": 40.0, "encoder_ms": 1e4})
    earlier.write_text(json.dumps({"cells": old}))
    rows = scaling.cells(tmp_path, carried=[earlier], run="scaling-new", only=["pytorch"])
    assert [(r["backend"], r["encoder_ms"], r["run"]) for r in rows] == [
        ("pytorch", 300.0, "scaling-new"),
        ("x", 900.0, "scaling-old"),
        ("y", 900.0, "scaling-old"),
    ]
