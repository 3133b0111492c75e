"""ONNX Runtime backend: export parity with PyTorch, every precision on a real clip, bad options, bad caches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CLIP_ID, TINY_EN_FP32_TEXT, minimal_params, size_breakdown

from whisperbench import artifacts, config
from whisperbench.backends import onnxruntime
from whisperbench.config import Cell
from whisperbench.errors import UserError
from whisperbench.io import write_jsonl

ONNX = {"precisions": ["fp32", "fp16", "int8_dynamic", "int8_static", "int4"]}


def onnx_params(**options) -> dict:
    return config.validate(minimal_params(backends={"onnxruntime": {**ONNX, "options": options}}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"graph_optimization_level": "fast"}, r"graph_optimization_level: 'fast' is not allowed; allowed: disable"),
        ({"int4_block_size": 48}, r"int4_block_size: 48 is not allowed; allowed: 16, 32"),
        ({"intra_threads": 4}, r"'intra_threads' was unexpected\); allowed keys: calibration_method"),
        ({"device": "tensorrt"}, r"device: 'tensorrt' is not allowed; allowed: cpu, cuda"),
    ],
)
def test_bad_session_option_is_one_line_naming_it(options, message):
    with pytest.raises(UserError, match=rf"backends\.onnxruntime\.options: .*{message}"):
        onnx_params(**options)


def test_cuda_is_rejected_where_this_build_lacks_it():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    with pytest.raises(
        UserError, match=r"options\.device: cuda \(CUDAExecutionProvider\) is not available .*onnxruntime-gpu"
    ):
        onnx_params(device="cuda")


def test_beam_search_is_rejected_for_onnxruntime():
    params = minimal_params(backends={"onnxruntime": ONNX}, decoding={"num_beams": 4})
    with pytest.raises(UserError, match=r"decoding.num_beams: onnxruntime decodes greedily"):
        config.validate(params)


def test_unsupported_precision_lists_the_supported_ones():
    params = minimal_params(backends={"onnxruntime": {"precisions": ["bf16"]}})
    with pytest.raises(UserError, match=r"supported: fp32, fp16, int8_dynamic, int8_static, int4"):
        config.validate(params)


def test_calibrating_on_an_evaluated_subset_is_refused():
    params = minimal_params(
        datasets={"dev": {"source": "librispeech", "subset": "dev-clean"}},
        calibration={"source": "librispeech", "subset": "dev-clean"},
    )
    with pytest.raises(UserError, match=r"calibration.subset: dev-clean is also evaluated"):
        config.validate(params)


def test_static_int8_keeps_the_mlp_down_projections_in_float():
    from onnx import TensorProto, helper, numpy_helper

    from whisperbench.backends.onnxruntime import graphs as onnx_graphs

    weights = [
        numpy_helper.from_array(np.zeros(shape, np.float32), name)
        for name, shape in [("fc1", (4, 16)), ("fc2", (16, 4)), ("bias", (4,))]
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "fc1"], ["h"], name="up"),
        helper.make_node("MatMul", ["h", "fc2"], ["d"], name="down"),
        helper.make_node("Add", ["d", "bias"], ["y"], name="add"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    model = helper.make_model(helper.make_graph(nodes, "mlp", inputs, outputs, weights))
    assert onnx_graphs.mlp_down_projections(model) == ["down"]


def _tied_decoder(path, vocab: int = 96, width: int = 64) -> np.ndarray:
    """A decoder step as the exporter writes Whisper's: Gather(table) in, MatMul(·, Transpose(table)) out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).normal(0, 0.05, (vocab, width)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["model.proj_out.weight", "input_ids"], ["embedding"], name="node_embedding"),
        helper.make_node("Relu", ["embedding"], ["hidden"], name="block"),
        helper.make_node("Transpose", ["model.proj_out.weight"], ["val_tied"], name="tie", perm=[1, 0]),
        helper.make_node("MatMul", ["hidden", "val_tied"], ["logits"], name="node_linear"),
    ]
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", 1])
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("logits", "embedding")]
    graph = helper.make_graph(nodes, "step", [ids], outputs, [numpy_helper.from_array(table, "model.proj_out.weight")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return table


def _dequantized_projection(model) -> np.ndarray:
    """The projection's weights [vocab, width] as the quantized MatMul computes with them."""
    from onnx import numpy_helper

    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type in ("MatMulNBits", "MatMulInteger"))
    if node.op_type == "MatMulInteger":
        return (tensors[node.input[1]].astype(np.float32) * tensors["val_tied_scale"]).T
    packed, scales = tensors[node.input[1]], tensors[node.input[2]]
    nibbles = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(*packed.shape[:2], -1).astype(np.float32)
    return ((nibbles - 8) * scales.reshape(*packed.shape[:2], 1)).reshape(len(packed), -1)


@pytest.mark.parametrize("precision", ["int8_dynamic", "int4"])
def test_the_tied_embedding_is_stored_once_and_reads_the_projections_weights(tmp_path, precision):
    import onnx
    import onnxruntime as ort

    from whisperbench.backends.onnxruntime import recipes

    source, target = tmp_path / "source" / "decoder.onnx", tmp_path / "decoder.onnx"
    source.parent.mkdir()
    table = _tied_decoder(source)
    details = recipes.RECIPES[precision](source, target, onnxruntime.Options(), {"scratch": tmp_path})
    weight = {"int4": "MatMulNBits val_tied_Q4", "int8_dynamic": "MatMulInteger val_tied_quantized"}[precision]
    assert details["tied_embedding"] == [f"embedding reads {weight}"]
    model = onnx.load(str(target))
    stored = sum(len(t.raw_data) for t in model.graph.initializer)
    bits = 4 if precision == "int4" else 8
    assert stored <= 1.3 * table.size * bits / 8  # one copy of the table at the recipe's bits, with its scales
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    ids = np.array([[0], [5], [95], [5]], np.int64)
    logits, embedding = session.run(None, {"input_ids": ids})
    projection = _dequantized_projection(model)
    np.testing.assert_allclose(embedding[:, 0], projection[ids[:, 0]], rtol=0, atol=1e-7)  # the same numbers
    step = np.abs(table).max(axis=1, keepdims=True) / (7 if precision == "int4" else 127)
    assert (np.abs(embedding[:, 0] - table[ids[:, 0]]) <= step[ids[:, 0]] * 0.51 + 1e-7).all()  # within half a step
    assert logits.shape == (4, 1, 96) and np.isfinite(logits).all()


# ---------------------------------------------------------------- real model, real clip


@pytest.fixture(scope="module")
def export_dir(tiny_en_dir, clip_manifest, tmp_path_factory):
    output = tmp_path_factory.mktemp("export") / "tiny.en"
    artifacts.export(tiny_en_dir, "tiny.en", "onnxruntime", onnx_params(), clip_manifest, output)
    return output


@pytest.mark.slow
def test_export_matches_pytorch_and_keeps_its_check(export_dir):
    record = artifacts.verify(export_dir)
    check = json.loads((export_dir / "export_check.json").read_text())
    assert record["check"] == check
    assert check["identical_transcripts"] == check["utterances"] == 1
    assert check["encoder_max_abs_diff"] < 1e-2
    assert {"encoder.onnx", "decoder.onnx", "calibration.jsonl"} <= set(record["files"])


@pytest.mark.slow
def test_encoder_graph_ends_at_the_shared_cut_point(export_dir):
    """encoder.onnx computes every decoder layer's cross-attention K/V (timed as the encoder, as the PyTorch
    backend times them); decoder.onnx only reads them and never sees the encoder's hidden states."""
    import onnx

    encoder = onnx.load(export_dir / "encoder.onnx", load_external_data=False).graph
    decoder = onnx.load(export_dir / "decoder.onnx", load_external_data=False).graph
    layers = sum(1 for i in decoder.input if i.name.startswith("past_key_"))
    cross = {f"cross_{kind}_{i}" for i in range(layers) for kind in ("key", "value")}
    assert layers == 4 and cross <= {o.name for o in encoder.output}
    decoder_inputs = {i.name for i in decoder.input}
    assert cross <= decoder_inputs and not any("hidden" in name for name in decoder_inputs)


@pytest.mark.slow
def test_decoder_reads_the_cross_keys_as_the_encoder_wrote_them(export_dir):
    """The encoder writes each cross key transposed once per utterance, so no token step transposes it."""
    import onnx

    encoder = onnx.load(export_dir / "encoder.onnx", load_external_data=False).graph
    decoder = onnx.load(export_dir / "decoder.onnx", load_external_data=False).graph
    for graph in (encoder.output, decoder.input):
        shapes = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph}
        assert shapes["cross_key_0"] == ["batch", 6, 64, 1500]
        assert shapes["cross_value_0"] == ["batch", 6, 1500, 64]
    readers = {node.op_type for node in decoder.node for name in node.input if name.startswith("cross_key_")}
    assert readers == {"MatMul"}
    produced = {name for node in decoder.node for name in node.output}
    assert all(record.name in produced for record in decoder.value_info)  # no shapes of removed tensors


def test_a_decoder_that_reads_its_keys_otherwise_is_left_unchanged():
    from onnx import TensorProto, helper

    from whisperbench.backends.onnxruntime import layout

    key = helper.make_tensor_value_info("cross_key_0", TensorProto.FLOAT, ["batch", 6, 1500, 64])
    query = helper.make_tensor_value_info("q", TensorProto.FLOAT, ["batch", 6, 1, 64])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 6, 1, 1500])
    nodes = [
        helper.make_node("Transpose", ["cross_key_0"], ["k_t"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "k_t"], ["scores"]),
    ]
    decoder = helper.make_model(helper.make_graph(nodes, "decoder", [query, key], [scores]))
    encoder = helper.make_model(helper.make_graph([], "encoder", [key], [key]))
    before = decoder.SerializeToString(), encoder.SerializeToString()
    assert not layout.keys_frames_last(encoder, decoder)
    assert (decoder.SerializeToString(), encoder.SerializeToString()) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "max_word_errors"),
    [("fp32", 0), ("fp16", 0), ("int8_dynamic", 2), ("int8_static", 2), ("int4", 3)],
)
def test_each_precision_builds_and_transcribes_the_clip(export_dir, clip, tmp_path, precision, max_word_errors):
    import jiwer

    from whisperbench.evaluate import load_transcriber

    params = onnx_params()
    output = tmp_path / precision
    record = artifacts.build(export_dir, "tiny.en", "onnxruntime", precision, params, output)
    assert record["status"] == "ok", record.get("reason")
    assert record["size_bytes"] > 1e6 and 0 < record["weights_bytes"] < record["size_bytes"]
    fp32_size = sum((export_dir / name).stat().st_size for name in ("encoder.onnx", "decoder.onnx"))
    if precision != "fp32":
        assert record["size_bytes"] < fp32_size
    groups = size_breakdown(onnxruntime, output)
    assert (groups["quantized weights"] > 0) == precision.startswith("int")
    transcriber = load_transcriber(Cell("clip", "tiny.en", "onnxruntime", precision), params, output, threads=2)
    result = transcriber.transcribe(clip)
    batch = transcriber.transcribe_batch([clip, clip[: len(clip) // 2], clip])  # rows end at different steps
    assert batch[0].text == batch[2].text and batch[0].n_tokens == batch[2].n_tokens
    if precision not in ("int8_dynamic", "int8_static"):  # those decode batches differently (batch_reason)
        assert (batch[0].text, batch[0].n_tokens) == (result.text, result.n_tokens)
    errors = jiwer.process_words(TINY_EN_FP32_TEXT.lower(), result.text.lower())
    assert errors.substitutions + errors.deletions + errors.insertions <= max_word_errors, result.text
    if precision == "fp32":
        assert result.text == TINY_EN_FP32_TEXT
    assert 0 < result.encoder_ms < result.first_token_ms <= result.total_ms and result.n_tokens >= 3
    if precision == "int8_static":
        assert record["calibration_ids"] == [CLIP_ID] and record["calibration_asked"] == 8  # a set smaller than asked


@pytest.mark.slow
def test_a_corrupt_onnx_file_is_detected_and_removed(export_dir, tmp_path):
    output = tmp_path / "fp32"
    artifacts.build(export_dir, "tiny.en", "onnxruntime", "fp32", onnx_params(), output)
    with open(output / "decoder.onnx", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"flipped")
    with pytest.raises(UserError, match=r"decoder.onnx: missing or corrupt \(sha256 differs"):
        artifacts.verify(output)
    assert "so that it is rebuilt" in artifacts.remove_if_corrupt(output)
    assert not output.exists()


@pytest.mark.slow
def test_a_failing_recipe_marks_its_cell_failed_and_the_rest_goes_on(export_dir, tiny_en_dir, tmp_path, monkeypatch):
    from whisperbench.backends.onnxruntime import recipes as backend
    from whisperbench.evaluate import accuracy_pass, timing_pass
    from whisperbench.metrics.score import score
    from whisperbench.report.summary import table

    def broken(*_):
        raise RuntimeError("MatMulNBits cannot quantize this graph")

    monkeypatch.setitem(backend.RECIPES, "int4", broken)
    params = onnx_params()
    record = artifacts.build(export_dir, "tiny.en", "onnxruntime", "int4", params, tmp_path / "int4")
    assert record["status"] == "failed" and "MatMulNBits cannot" in record["reason"]
    manifest = tmp_path / "eval.jsonl"
    write_jsonl(manifest, [])
    cell = Cell("clip", "tiny.en", "onnxruntime", "int4")
    rows, accuracy = accuracy_pass(cell, params, manifest, tiny_en_dir, tmp_path / "int4")
    timings, timing = timing_pass(cell, params, manifest, tiny_en_dir, tmp_path / "int4")
    assert rows == timings == [] and accuracy["status"] == timing["status"] == "failed"
    metrics = score(rows, accuracy, timings, timing)
    assert metrics["status"].startswith("failed: RuntimeError: MatMulNBits cannot")
    import pandas as pd

    summary = table(pd.DataFrame([metrics]))
    assert summary.loc[0, "status"].startswith("failed") and pd.isna(summary.loc[0, "wer_pct"])
