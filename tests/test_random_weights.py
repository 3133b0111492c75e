"""Shape-true random weights: every registry model's published architecture, seeded, in HF layout."""

import pytest
from conftest import minimal_params

from whisperbench import config
from whisperbench.models import fetch, random_weights
from whisperbench.models.architectures import ARCHITECTURES
from whisperbench.models.registry import MODELS

# The hub repositories of the registry ids (large-v1 is named openai/whisper-large there).
HUB_IDS = {
    "tiny": "openai/whisper-tiny",
    "tiny.en": "openai/whisper-tiny.en",
    "base": "openai/whisper-base",
    "base.en": "openai/whisper-base.en",
    "small": "openai/whisper-small",
    "small.en": "openai/whisper-small.en",
    "medium": "openai/whisper-medium",
    "medium.en": "openai/whisper-medium.en",
    "large-v1": "openai/whisper-large",
    "large-v2": "openai/whisper-large-v2",
    "large-v3": "openai/whisper-large-v3",
    "large-v3-turbo": "openai/whisper-large-v3-turbo",
    "distil-large-v3": "distil-whisper/distil-large-v3",
}
SHAPE_KEYS = (
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "num_mel_bins",
    "vocab_size",
    "max_source_positions",
    "max_target_positions",
    "decoder_start_token_id",
    "eos_token_id",
)


def test_registry_hub_ids_and_architectures_cover_the_same_models():
    assert {model: info.hub_repo for model, info in MODELS.items()} == HUB_IDS
    assert set(ARCHITECTURES) == set(MODELS)


@pytest.mark.parametrize("model", sorted(ARCHITECTURES))
def test_architecture_adds_up_to_the_hub_parameter_count(model):
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    architecture = ARCHITECTURES[model]
    with torch.device("meta"):
        built = WhisperForConditionalGeneration(WhisperConfig(**architecture.config_fields()))
    count = sum(p.numel() for p in built.parameters()) / 1e6  # the tied output projection counted once
    assert count == pytest.approx(architecture.hub_params_m, rel=0.01)


def test_large_v3_family_has_128_mels_and_51866_tokens():
    for model in ("large-v3", "large-v3-turbo", "distil-large-v3"):
        assert (ARCHITECTURES[model].num_mel_bins, ARCHITECTURES[model].vocab_size) == (128, 51866)
    assert (ARCHITECTURES["large-v3-turbo"].decoder_layers, ARCHITECTURES["distil-large-v3"].decoder_layers) == (4, 2)
    assert ARCHITECTURES["large-v2"].num_mel_bins == 80


def test_random_tiny_en_has_the_real_models_config_and_tokenizer(tiny_en_dir, tmp_path):
    from transformers import WhisperConfig, WhisperTokenizerFast

    params = config.validate(minimal_params(model_source="random", random_weights_seed=3))
    record = fetch.fetch("tiny.en", params, tmp_path / "m")
    assert record["source"] == "random" and fetch.is_random(record)
    assert record["random_weights"]["seed"] == 3 and record["stored_dtypes"] == ["float32"]
    real, random = (
        WhisperConfig.from_pretrained(fetch.hf_dir(tiny_en_dir)),
        WhisperConfig.from_pretrained(fetch.hf_dir(tmp_path / "m")),
    )
    assert {k: getattr(random, k) for k in SHAPE_KEYS} == {k: getattr(real, k) for k in SHAPE_KEYS}
    text = " Stuff it into you, his belly counselled him."
    tokenizers = [WhisperTokenizerFast.from_pretrained(fetch.hf_dir(d)) for d in (tiny_en_dir, tmp_path / "m")]
    assert tokenizers[0](text).input_ids == tokenizers[1](text).input_ids
    assert not fetch.is_random(fetch.read_source(tiny_en_dir))


def test_random_weights_are_seeded(tmp_path):
    from safetensors.numpy import load_file

    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        random_weights.write("tiny.en", tmp_path / name, seed)
    weights = {name: load_file(tmp_path / name / "model.safetensors") for name in "abc"}
    key = "model.decoder.layers.0.fc1.weight"
    assert (weights["a"][key] == weights["b"][key]).all() and not (weights["a"][key] == weights["c"][key]).all()
    assert 0.015 < weights["a"][key].std() < 0.025  # transformers' init_std, a trained model's scale


def test_large_v3_tokenizer_inserts_yue_and_shifts_the_special_tokens(tmp_path, monkeypatch):
    """The large-v3 family's tokenizer and generation ids (written on a shrunk copy: the shapes under test
    here are the vocabulary's, not the layers')."""
    from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperTokenizerFast

    from whisperbench.models import architectures

    small_v3 = architectures.Architecture(64, 1, 1, 2, num_mel_bins=128, vocab_size=51866)
    monkeypatch.setitem(random_weights.ARCHITECTURES, "large-v3", small_v3)
    random_weights.write("large-v3", tmp_path / "v3")
    tokenizer = WhisperTokenizerFast.from_pretrained(tmp_path / "v3")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|yue|>", "<|translate|>", "<|notimestamps|>", "<|30.00|>")}
    assert ids == {"<|yue|>": 50358, "<|translate|>": 50359, "<|notimestamps|>": 50364, "<|30.00|>": 51865}
    generation = GenerationConfig.from_pretrained(tmp_path / "v3")
    assert len(generation.lang_to_id) == 100 and generation.task_to_id == {"transcribe": 50360, "translate": 50359}
    assert generation.no_timestamps_token_id == 50364 and 50363 in generation.suppress_tokens
    assert WhisperFeatureExtractor.from_pretrained(tmp_path / "v3").feature_size == 128


def test_random_source_of_an_unknown_architecture_is_one_line(tmp_path):
    from whisperbench.errors import UserError

    with pytest.raises(UserError, match="no published architecture for 'mine'"):
        random_weights.write("mine", tmp_path / "x")
