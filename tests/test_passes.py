"""The accuracy pass (every utterance once, batched) and the timing pass (subset, batch 1) of one cell."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import CLIP_ID, TINY_EN_FP32_TEXT, minimal_params

from whisperbench import artifacts, config
from whisperbench.backends.base import Hypothesis
from whisperbench.config import Cell
from whisperbench.evaluate import accuracy_pass, decode_all, timing_pass
from whisperbench.io import write_jsonl
from whisperbench.metrics.score import score


class _FlakyTranscriber:
    """Fails on any batch of more than one utterance, as a backend out of memory would."""

    def __init__(self):
        self.batches = []

    def transcribe_batch(self, audios):
        self.batches.append(len(audios))
        if len(audios) > 1:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
        return [Hypothesis(f"{len(audios[0])} samples", 3)]


def test_a_failed_batch_is_retried_one_at_a_time_and_no_utterance_is_lost(tmp_path):
    utterances = []
    for index in range(5):
        path = tmp_path / f"u{index}.wav"
        soundfile.write(path, np.zeros(1600 * (index + 1), np.float32), 16000)
        utterances.append({"id": f"u{index}", "reference": "X", "audio_path": str(path), "duration_s": index + 1.0})
    transcriber = _FlakyTranscriber()
    rows, fallback = decode_all(transcriber, utterances, batch_size=2, progress=False)
    assert [row["id"] for row in rows] == ["u0", "u1", "u2", "u3", "u4"]
    assert rows[3]["hypothesis"] == "6400 samples"
    assert fallback["after_utterances"] == 0 and "can't allocate" in fallback["error"]
    assert transcriber.batches == [2, 1, 1, 1, 1, 1]  # the failed batch, then each utterance alone


@pytest.fixture(scope="module")
def fp32_artifact(tiny_en_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("artifact") / "fp32"
    artifacts.build(tiny_en_dir, "tiny.en", "pytorch", "fp32", config.validate(minimal_params()), folder)
    return folder


@pytest.fixture(scope="module")
def manifests(sample_root, tmp_path_factory):
    """Three real test-clean clips, plus one over 30 s made of them (the backend has no long-form decoding)."""
    from whisperbench.data import audio

    folder = tmp_path_factory.mktemp("manifests")
    clips = sorted((sample_root / "test-clean").rglob("*.flac"))
    rows = [
        {"id": path.stem, "reference": "REFERENCE", "audio_path": str(path), "duration_s": audio.duration_seconds(path)}
        for path in clips
    ]
    long_audio = np.concatenate([audio.load(str(path)) for path in clips] * 4)
    soundfile.write(folder / "long.wav", long_audio, 16000)
    long_row = {"id": "zz-long", "reference": "LONG", "audio_path": str(folder / "long.wav")}
    rows.append(long_row | {"duration_s": len(long_audio) / 16000})
    assert rows[-1]["duration_s"] > 30 and CLIP_ID in {row["id"] for row in rows}
    write_jsonl(folder / "all.jsonl", rows)
    write_jsonl(folder / "timed.jsonl", [row for row in rows if row["id"] == CLIP_ID])
    return folder


@pytest.mark.slow
def test_both_passes_on_real_clips_agree_and_count_the_long_utterance(fp32_artifact, tiny_en_dir, manifests):
    params = config.validate(
        minimal_params(
            accuracy={"batch_size": 2}, timing={"utterances": 1, "repeats": 1, "warmup": 0, "throughput": True}
        )
    )
    cell = Cell("clean", "tiny.en", "pytorch", "fp32")
    hypotheses, accuracy = accuracy_pass(cell, params, manifests / "all.jsonl", tiny_en_dir, fp32_artifact, False)
    timings, timing = timing_pass(cell, params, manifests / "timed.jsonl", tiny_en_dir, fp32_artifact, False)
    by_id = {row["id"]: row for row in hypotheses}
    assert by_id[CLIP_ID]["hypothesis"] == TINY_EN_FP32_TEXT
    assert by_id["zz-long"]["skipped"].startswith("longer than 30 s") and accuracy["n_left_out"] == 1
    assert accuracy["batch_size"] == 2 and accuracy["batch_fallback"] is None
    assert [row["id"] for row in timings] == [CLIP_ID] and timings[0]["repeats"] == 1
    metrics = score(hypotheses, accuracy, timings, timing)
    assert (metrics["n_utterances"], metrics["n_subset"], metrics["n_timed"]) == (3, 4, 1)
    assert metrics["agreement"] == 1.0 and metrics["status"] == "ok"
    assert metrics["rtfx"] > 0 and metrics["encoder_ms"] > 0
    # memory while transcribing, apart from the peak while loading (Linux resets the peak between them)
    assert timing["throughput"]["batch_size"] == 2 and timing["throughput"]["rtfx"] > 0
    assert metrics["rtfx_batched"] == timing["throughput"]["rtfx"]
    assert timing["peak_rss_separate"] is True
    assert metrics["peak_rss_mb"] > 100 and metrics["peak_rss_loading_mb"] > 100
    assert 0 < metrics["baseline_rss_mb"] < metrics["peak_rss_loading_mb"]  # the harness before the backend loads
