import pytest
from conftest import CLIP_REFERENCE, TINY_EN_FP32_TEXT, minimal_params, size_breakdown

from whisperbench import artifacts, config
from whisperbench.backends import ctranslate2 as backend
from whisperbench.backends.base import Decoding
from whisperbench.errors import UserError
from whisperbench.metrics.score import word_errors

BUILT = ("fp32", "int8")


def test_a_compute_type_this_cpu_lacks_is_refused_with_the_supported_ones():
    missing = [p for p in backend.PRECISIONS if backend.unsupported_reason(p)]
    if not missing:
        pytest.skip("this CPU supports every CTranslate2 compute type")
    params = minimal_params(backends={"ctranslate2": {"precisions": ["fp32", missing[0]]}})
    with pytest.raises(UserError, match=rf"{missing[0]} cannot run here: ctranslate2 .* has no .* \(it has: fp32"):
        config.validate(params)


@pytest.fixture(scope="module")
def built(tiny_en_dir, tmp_path_factory):

    params = config.validate(minimal_params(backends={"ctranslate2": {"precisions": list(BUILT)}}))
    root = tmp_path_factory.mktemp("ct2")
    return {p: (root / p, artifacts.build(tiny_en_dir, "tiny.en", "ctranslate2", p, params, root / p)) for p in BUILT}


@pytest.mark.slow
@pytest.mark.parametrize("precision", BUILT)
def test_each_compute_type_converts_and_transcribes_a_real_clip(built, clip, precision):
    folder, record = built[precision]
    assert record["status"] == "ok" and record["compute_type"] == backend.COMPUTE_TYPES[precision]
    transcriber = backend.load(folder, precision, backend.Options(), Decoding(), threads=2)
    result = transcriber.transcribe(clip)
    if precision == "fp32":  # CTranslate2's float32 decodes as PyTorch fp32 does
        assert result.text == TINY_EN_FP32_TEXT
    assert word_errors([{"reference": CLIP_REFERENCE, "hypothesis": result.text}])["wer"] <= 0.5, result.text
    assert 0 < result.encoder_ms < result.first_token_ms <= result.total_ms and result.n_tokens >= 8
    batch = transcriber.transcribe_batch([clip, clip[: len(clip) // 2]])
    assert (batch[0].text, batch[0].n_tokens) == (result.text, result.n_tokens)
    assert "generate()" in transcriber.runtime["cut_points"]["encoder"]


@pytest.mark.slow
def test_int8_weights_are_saved_smaller(built):
    assert built["int8"][1]["size_bytes"] < 0.5 * built["fp32"][1]["size_bytes"]
    for _, record in built.values():  # weights MB: model.bin's tensors, without the vocabulary and configs
        assert 0 < record["weights_bytes"] < record["size_bytes"]


@pytest.mark.slow
def test_stored_tensors_account_for_model_bin(built):
    fp32, int8 = (size_breakdown(backend, built[p][0]) for p in ("fp32", "int8"))
    assert fp32["quantized weights"] == 0 and int8["quantized weights"] > 0.7 * sum(int8.values())
    assert 0 < int8["scales / tables"] < int8["quantized weights"] / 50  # one float32 scale per output row
