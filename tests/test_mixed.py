"""Mixed int4/int8 recipes: tensor groups, the 4-bit scheme, the sensitivity ranking, the budget solver, each
backend's recorded bit assignment, validation one-liners, and calibration/evaluation disjointness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_EN_FP32_TEXT, minimal_params

from whisperbench import artifacts, config
from whisperbench.errors import UserError
from whisperbench.metrics.score import word_errors
from whisperbench.mixed import budget, schemes
from whisperbench.mixed.groups import CONV, EMBEDDING, ENCODER_POSITIONS, Group, norm_parameters, tensor_groups
from whisperbench.mixed.schemes import Palette, Scheme
from whisperbench.models.architectures import ARCHITECTURES
from whisperbench.models.fetch import hf_dir

TINY = ARCHITECTURES["tiny.en"].config_fields()


def test_groups_cover_every_parameter_of_the_model_once(tiny_en_dir):
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(hf_dir(tiny_en_dir))
    config_fields = model.config.to_dict()
    groups = tensor_groups(config_fields)
    counted = sum(g.weights + g.biases for g in groups) + norm_parameters(config_fields)
    assert counted == model.num_parameters()  # tied embedding / projection once
    assert len(groups) == 4 + 2 * 4 + 3 * 4  # embedding, conv, 2 position tables; encoder 2 per layer, decoder 3
    for group in groups:
        weights = sum(model.get_submodule(module).weight.numel() for module in group.modules)
        assert weights == group.weights, group.name


def test_sym4_is_onnxruntimes_symmetric_int4_and_the_pytorch_int4_recipe():
    import torch
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits

    from whisperbench.backends.pytorch import int4

    weight = np.random.default_rng(0).standard_normal((24, 64)).astype(np.float32)  # [out, in]
    rows, cols, block = 64, 24, 32
    packed = np.zeros((cols, rows // block, block // 2), np.uint8)
    scales = np.zeros((cols, rows // block), np.float32)
    zero_points = np.zeros((cols, 1), np.uint8)
    quantize_matmul_4bits(packed, np.ascontiguousarray(weight.T), scales, zero_points, block, cols, rows, True)
    codes = np.stack([packed & 15, packed >> 4], -1).reshape(cols, rows // block, block).astype(np.float32) - 8
    onnx = (codes * scales[:, :, None]).reshape(cols, rows)
    ours = Scheme(32, "fp32").quantize_dequantize(torch.from_numpy(weight)).numpy()
    assert np.array_equal(ours, onnx)
    nibbles, bf16_scales = int4.quantize_weight(torch.from_numpy(weight), 32)
    values = int4.unpack(nibbles).float() - 8
    pytorch = (values.reshape(24, 2, 32) * bf16_scales.float().unsqueeze(-1)).reshape(24, 64)
    assert torch.equal(Scheme(32, "bf16").quantize_dequantize(torch.from_numpy(weight)), pytorch)


def test_sym4r_is_coremltools_linear_symmetric_int4_per_block():
    import torch
    from coremltools.optimize._utils import compute_qparams

    weight = np.random.default_rng(0).standard_normal((24, 64)).astype(np.float16)  # the fp16 program's weights
    codes, scales, zero_points = compute_qparams(weight, 4, True, "LINEAR_SYMMETRIC", None, [1, 32])
    assert zero_points is None and codes.min() >= -7
    coreml = (codes.astype(np.float32).reshape(24, 2, 32) * scales.astype(np.float32)[..., None]).reshape(24, 64)
    ours = Scheme(32, "fp16", "sym4r").quantize_dequantize(torch.from_numpy(weight.astype(np.float32))).numpy()
    assert np.array_equal(ours, coreml)


def test_scheme_names_round_trip_and_bad_ones_are_refused():
    assert Scheme.parse("sym4_b64_bf16") == Scheme(64, "bf16")
    assert Scheme.parse("sym4r_b32_fp16") == Scheme(32, "fp16", "sym4r")
    assert schemes.parse("pal4_g8") == Palette(4, 8) and schemes.parse("sym4_b32_fp32") == Scheme(32)
    with pytest.raises(ValueError, match="or pal4_g<group>"):
        schemes.parse("pal4_b8")
    with pytest.raises(ValueError, match="unknown 4-bit scheme"):
        Scheme.parse("pal4_b8_fp32")


TOY = [Group("a", ("a",), 100, 0), Group("b", ("b",), 300, 0), Group("c", ("c",), 50, 0), Group(CONV, ("x",), 50, 0)]
TOY_WIDTHS = budget.Widths(float_bits=16, fixed={CONV: 16})


def test_effective_bits_count_every_parameter_at_its_nominal_width():
    # 450 movable weights at 4 bits, 50 fixed at 16: (1800 + 800) / 500
    assert budget.effective_bits(TOY, 0, budget.uniform(TOY, TOY_WIDTHS), TOY_WIDTHS) == pytest.approx(5.2)
    assert budget.reachable(TOY, 0, TOY_WIDTHS) == pytest.approx((5.2, 8.8))


def test_the_solver_promotes_in_order_skips_what_does_not_fit_and_keeps_the_budget():
    # b (+1200 bits = +2.4 bits/weight) does not fit in 6.2, a (+0.8) and then c (+0.4) do
    assignment = budget.solve(TOY, 0, ["b", "a", "c"], 6.4, TOY_WIDTHS)
    assert assignment == {"a": 8, "b": 4, "c": 8, CONV: 16}
    assert budget.effective_bits(TOY, 0, assignment, TOY_WIDTHS) <= 6.4
    assert budget.solve(TOY, 0, ["b", "a", "c"], 5.2, TOY_WIDTHS) == budget.uniform(TOY, TOY_WIDTHS)
    assert budget.solve(TOY, 0, [CONV, "a"], 6.0, TOY_WIDTHS)[CONV] == 16  # a fixed group never moves


def test_the_sensitivity_order_is_damage_per_weight():
    # b does the most damage alone but per weight less than a and c: a small damaging group goes first
    ranking = [
        {"rank": 1, "group": "b", "kl": 0.03, "weights": 300},
        {"rank": 2, "group": "a", "kl": 0.02, "weights": 100},
        {"rank": 3, "group": "c", "kl": 0.01, "weights": 50},
        {"rank": 4, "group": "d", "kl": 0.02, "weights": 100},
    ]
    assert budget.sensitivity_order({"ranking": ranking}) == ["a", "c", "d", "b"]  # a, d tie: by name


def test_the_fixed_order_is_the_embedding_then_first_and_last_layers():
    order = budget.fixed_order(tensor_groups(TINY))
    assert order[0] == EMBEDDING
    assert order[1:] == [
        "encoder.0.self_attention", "encoder.0.mlp", "encoder.3.self_attention", "encoder.3.mlp",
        "decoder.0.self_attention", "decoder.0.cross_attention", "decoder.0.mlp",
        "decoder.3.self_attention", "decoder.3.cross_attention", "decoder.3.mlp",
    ]  # fmt: skip


def _mixed_params(backend: str, precision: str, **options) -> dict:
    return minimal_params(backends={backend: {"precisions": ["fp32", precision], "options": options}})


@pytest.mark.parametrize(
    ("backend", "value", "message"),
    [
        ("pytorch", 3.5, r"mixed_bits_per_weight 3\.5 is not a number of bits per weight in 4 \.\.\. 16"),
        ("pytorch", 17, r"mixed_bits_per_weight 17 is not a number of bits per weight in 4 \.\.\. 16"),
        (
            "pytorch",
            4.2,
            r"mixed_bits_per_weight: 4\.2 cannot be met for tiny\.en: its mixes reach 4\.422 .* to 8\.282",
        ),
        ("onnxruntime", 9.0, r"cannot be met for tiny\.en: its mixes reach 4\.559 .* to 8\.418"),
    ],
)
def test_a_budget_out_of_reach_is_one_line_with_the_range(backend, value, message):
    with pytest.raises(UserError, match=f"backends.{backend}.options.*{message}"):
        config.validate(_mixed_params(backend, "int4_mixed", mixed_bits_per_weight=value))


def test_whispercpp_refuses_a_mix_with_its_loaders_reason_and_its_precisions():
    params = minimal_params(backends={"whispercpp": {"precisions": ["q4_mixed"], "options": {"build": "wheel"}}})
    with pytest.raises(UserError) as error:
        config.validate(params)
    text = str(error.value)
    assert "backends.whispercpp.precisions: q4_mixed: whisper.cpp cannot load mixed types" in text
    assert "its precisions: f16, q8_0, q5_0, q4_0" in text and "\n" not in text


def test_an_artifact_calibrated_on_an_evaluated_utterance_is_refused(tmp_path):
    from whisperbench.evaluate import _check_disjoint

    mixed_record = {"mix": {"selection": "sensitivity"}, "calibration_ids": ["a", "b"]}
    _check_disjoint(mixed_record, [{"id": "c"}], tmp_path / "m.jsonl")
    with pytest.raises(UserError, match="were used to calibrate this artifact"):
        _check_disjoint(mixed_record, [{"id": "b"}], tmp_path / "m.jsonl")


def test_the_sensitivity_pass_reads_the_calibration_pool_which_no_dataset_evaluates():
    from whisperbench import dag

    params = config.validate(_mixed_params("pytorch", "int4_mixed"))
    assert dag.sensitivity_passes(params) == [("tiny.en", "sym4_b32_bf16")]
    assert dag.needs_calibration(params)
    evaluated = {spec.get("subset") for spec in params["datasets"].values()}
    assert params["calibration"]["subset"] not in evaluated
    bad = _mixed_params("pytorch", "int4_mixed") | {"calibration": {"source": "librispeech", "subset": "test-other"}}
    bad["datasets"] = {"other": {"source": "librispeech", "subset": "test-other", "max_utterances": 3}}
    with pytest.raises(UserError, match="calibration"):
        config.validate(bad)


@pytest.fixture(scope="module")
def calibration_rows(sample_root):
    clips = sorted((sample_root / "dev-clean").rglob("*.flac"))[:2]
    return [{"id": path.stem, "audio_path": str(path)} for path in clips]


@pytest.mark.slow
def test_the_ranking_is_deterministic_and_covers_every_group(tiny_en_dir, calibration_rows):
    from whisperbench.backends.base import Decoding
    from whisperbench.mixed import sensitivity

    first = sensitivity.measure(hf_dir(tiny_en_dir), calibration_rows, Scheme(32, "fp32"), Decoding(), 24, 2)
    second = sensitivity.measure(hf_dir(tiny_en_dir), calibration_rows, Scheme(32, "fp32"), Decoding(), 24, 2)
    assert first == second
    assert [row["rank"] for row in first["ranking"]] == list(range(1, 25))
    assert {row["group"] for row in first["ranking"]} == {group.name for group in tensor_groups(TINY)}
    kls = [row["kl"] for row in first["ranking"]]
    assert kls == sorted(kls, reverse=True) and all(kl >= 0 for kl in kls)
    assert first["all_groups_4bit"]["kl"] > kls[0]  # every group at once hurts more than the worst alone
    assert first["calibration_ids"] == [row["id"] for row in calibration_rows]


def _record(scheme: str) -> dict:
    """A sensitivity record whose damage per weight puts two decoder / encoder groups first, then the embedding."""
    order = ["decoder.3.mlp", "encoder.0.self_attention", EMBEDDING, ENCODER_POSITIONS]
    weights = {g.name: g.weights for g in tensor_groups(TINY)}
    rest = [name for name in weights if name not in order]
    ranking = [
        {"rank": i + 1, "group": name, "kl": weights[name] / (i + 1), "weights": weights[name]}
        for i, name in enumerate(order + rest)
    ]
    return {"scheme": scheme, "calibration_ids": ["calibration-1"], "ranking": ranking}


@pytest.mark.slow
def test_pytorch_records_and_stores_the_mixes_bits(tiny_en_dir, clip, tmp_path):
    from whisperbench.backends.base import Decoding
    from whisperbench.backends.pytorch import int4, load

    params = config.validate(_mixed_params("pytorch", "int4_mixed", mixed_bits_per_weight=4.65))
    record = artifacts.build(
        tiny_en_dir, "tiny.en", "pytorch", "int4_mixed", params, tmp_path / "mixed", _record("sym4_b32_bf16")
    )
    assert record["status"] == "ok", record.get("reason")
    mix = record["mix"]
    # from 4.42: decoder.3.mlp (1.18 M weights, +0.125) and encoder.0 attention (0.59 M, +0.062) fit in 4.65;
    # the embedding (19.9 M, +2.1) does not, nor the positions (bf16 in this recipe)
    assert mix["high_bit_groups"] == ["encoder.0.self_attention", "decoder.3.mlp"]
    assert 4.6 < mix["bits_per_weight"] <= 4.65 and record["calibration_ids"] == ["calibration-1"]
    layout = json.loads((tmp_path / "mixed" / int4.LAYOUT).read_text())
    expected = [f"model.encoder.layers.0.self_attn.{p}_proj" for p in ("k", "out", "q", "v")]
    expected += ["model.decoder.layers.3.fc1", "model.decoder.layers.3.fc2"]
    assert layout["linears_int8"] == sorted(expected) and "proj_out" in layout["linears"]
    stored_bits = record["weights_bytes"] * 8 / 37_760_256
    assert stored_bits <= 1.25 * mix["bits_per_weight"]  # scales within a quarter of params x bits / 8
    transcriber = load(tmp_path / "mixed", "int4_mixed", params_options("pytorch", params), Decoding(), 2)
    assert _word_errors(transcriber.transcribe(clip).text) <= 3


def params_options(backend: str, params: dict):
    from whisperbench.backends import registry

    return registry.get(backend).load_module().Options.from_params(params["backends"][backend].get("options", {}))


def _word_errors(text: str) -> int:
    import jiwer

    errors = jiwer.process_words(TINY_EN_FP32_TEXT.lower(), text.lower())
    return errors.substitutions + errors.deletions + errors.insertions


@pytest.mark.slow
def test_the_fixed_mix_needs_no_sensitivity_and_spends_the_budget_on_the_edges(tiny_en_dir, tmp_path):
    params = config.validate(_mixed_params("pytorch", "int4_fixedmix", mixed_bits_per_weight=4.6))
    record = artifacts.build(tiny_en_dir, "tiny.en", "pytorch", "int4_fixedmix", params, tmp_path / "fixed")
    assert record["status"] == "ok", record.get("reason")
    assert record["mix"]["selection"] == "fixed" and "calibration_ids" not in record
    high = record["mix"]["high_bit_groups"]
    # from 4.42: the embedding (+2.1) cannot fit, encoder.0 attention (+0.06) can, its MLP (+0.125) then cannot
    # and is skipped for the next edge layer's smaller groups
    assert EMBEDDING not in high and "encoder.0.mlp" not in high
    assert high[:2] == ["encoder.0.self_attention", "encoder.3.self_attention"]
    assert record["mix"]["bits_per_weight"] <= 4.6


def _export(backend: str, tiny_en_dir, clip_manifest, tmp_path_factory) -> Path:
    """tiny.en exported for `backend` (its export check on one clip), the source of its mixed builds."""
    output = tmp_path_factory.mktemp(f"export-{backend}") / "tiny.en"
    params = config.validate(_mixed_params(backend, "int4_mixed", export_check_utterances=1))
    artifacts.export(tiny_en_dir, "tiny.en", backend, params, clip_manifest, output)
    return output


@pytest.fixture(scope="module")
def mixed_export(tiny_en_dir, clip_manifest, tmp_path_factory):
    return _export("onnxruntime", tiny_en_dir, clip_manifest, tmp_path_factory)


@pytest.mark.slow
def test_onnxruntime_quantizes_the_mixes_nodes_at_8_bits(mixed_export, clip, tmp_path):
    import onnx

    from whisperbench.backends.base import Decoding
    from whisperbench.backends.onnxruntime import load

    weights = json.loads((mixed_export / "weights_map.json").read_text())
    assert len(weights["encoder.onnx"]) == 35 and len(weights["decoder.onnx"]) == 34  # every 2-D weight found
    params = config.validate(_mixed_params("onnxruntime", "int4_mixed", mixed_bits_per_weight=4.82))
    output = tmp_path / "mixed"
    record = artifacts.build(
        mixed_export, "tiny.en", "onnxruntime", "int4_mixed", params, output, _record("sym4_b32_fp32")
    )
    assert record["status"] == "ok", record.get("reason")
    # the encoder's positions are fixed at 4 bits (a Gather: the quantizer's only width for it), so the budget
    # they took in the other backends' mixes goes to the next group in the order
    assert record["mix"]["high_bit_groups"] == [
        "encoder.0.self_attention",
        "encoder.1.self_attention",
        "decoder.3.mlp",
    ]  # model order
    assert record["mix"]["bits"][ENCODER_POSITIONS] == 4
    bits, gathers = {}, []
    for graph in ("encoder.onnx", "decoder.onnx"):
        for node in onnx.load(output / graph).graph.node:
            if node.op_type == "MatMulNBits":
                width = next(a.i for a in node.attribute if a.name == "bits")
                bits[width] = bits.get(width, 0) + 1
            gathers += [node.name] if node.op_type.startswith("Gather") else []
    # 8-bit: encoder.0 and encoder.1 q/k/v/out (8) + decoder.3 fc1/fc2 (2), as recorded
    assert bits[8] == 10 and bits[4] > 40
    assert record["encoder.onnx"]["nodes_8bit"] == 8 and record["decoder.onnx"]["nodes_8bit"] == 2
    assert "node_embedding_Q4" in gathers  # the encoder's position table, stored at the 4 bits recorded
    transcriber = load(output, "int4_mixed", params_options("onnxruntime", params), Decoding(), 2)
    assert _word_errors(transcriber.transcribe(clip).text) <= 3


@pytest.fixture(scope="module")
def coreml_export(tiny_en_dir, clip_manifest, tmp_path_factory):
    return _export("coreml", tiny_en_dir, clip_manifest, tmp_path_factory)


@pytest.mark.slow
def test_coreml_stores_the_mixes_groups_as_int8_per_op(coreml_export, clip, tmp_path):
    from coremltools.converters.mil.mil import types

    from whisperbench.backends.base import Decoding
    from whisperbench.backends.coreml import load, weights

    params = config.validate(_mixed_params("coreml", "int4_mixed", mixed_bits_per_weight=4.44))
    output = tmp_path / "mixed"
    record = artifacts.build(
        coreml_export, "tiny.en", "coreml", "int4_mixed", params, output, _record("sym4r_b32_fp16")
    )
    assert record["status"] == "ok", record.get("reason")
    # from 4.18 (convolutions fp16): decoder.3.mlp (+0.125) and encoder.0 attention (+0.062) fit in 4.44, the
    # embedding does not, the encoder's positions (+0.06) do, then the decoder's (+0.018) no longer
    assert record["mix"]["high_bit_groups"] == [ENCODER_POSITIONS, "encoder.0.self_attention", "decoder.3.mlp"]
    assert record["kept_float"] == ["model.encoder.conv1.weight", "model.encoder.conv2.weight"]
    names = json.loads((output / "weight_names.json").read_text())
    int8 = set()
    for package in ("encoder.mlpackage", "decoder.mlpackage"):
        for op in weights.program(output / package).functions["main"].operations:
            if op.op_type == "constexpr_blockwise_shift_scale" and types.builtin_to_string(op.data.dtype) == "int8":
                int8.add(names[weights.base_name(op.name)])
    expected = {f"model.encoder.layers.0.self_attn.{p}_proj.weight" for p in ("k", "out", "q", "v")}
    expected |= {"model.decoder.layers.3.fc1.weight", "model.decoder.layers.3.fc2.weight"}
    assert int8 == expected | {"model.encoder.embed_positions.weight"}
    stored_bits = record["weights_bytes"] * 8 / 37_760_256
    assert stored_bits <= 1.25 * record["mix"]["bits_per_weight"]
    transcriber = load(output, "int4_mixed", params_options("coreml", params), Decoding(), 2)
    text = transcriber.transcribe(clip).text  # "stuff it into you": what the clip says, where fp32 hears "stuffered"
    assert word_errors([{"reference": TINY_EN_FP32_TEXT, "hypothesis": text}])["wer"] <= 2 / 7, text


def test_a_pal4_mixs_8_bit_groups_get_8_bit_palettes_on_the_same_axis():
    from coremltools.converters.mil.mil import types

    from whisperbench.backends import coreml
    from whisperbench.backends.coreml import recipes

    high = recipes._high("pal4", coreml.Options(), 1)  # e.g. base's embedding: grouped by input channels
    assert (high.nbits, high.channel_axis, high.group_size, high.mode) == (8, 1, 8, "KMEANS")
    linear = recipes._high("int4", coreml.Options(), None)
    assert (types.builtin_to_string(linear.dtype), linear.granularity.name) == ("int8", "PER_CHANNEL")
    assert coreml.mixed_scheme(coreml.Options(), "pal4_mixed") == Palette(4, 8)
    assert coreml.mixed_scheme(coreml.Options(), "int4_mixed") == Scheme(32, "fp16", "sym4r")


@pytest.mark.parametrize("backend", ["onnxruntime", "coreml"])
def test_mixed_builds_are_checked_for_memory_and_disk_before_they_start(backend):
    from whisperbench import artifacts
    from whisperbench.backends import registry

    module = registry.get(backend).load_module()
    for precision in module.MIXED:
        assert precision in module.BUILD_MEMORY and precision in module.BUILD_DISK
        # large-v3's 1.55 B parameters: a need the pre-check names before the step runs
        assert artifacts.memory_need_mb(backend, precision, 1_550_000_000) > 3000
        uniform = artifacts.memory_need_mb(backend, "int4", 1_550_000_000)
        assert artifacts.memory_need_mb(backend, precision, 1_550_000_000) >= uniform
