"""Core ML packages run for real (macOS only: coremltools' `predict`), timed at the shared cut points.

The host loop is `graphs.greedy`, the one the export check runs in PyTorch on every platform; this module
only puts `MLModel.predict` behind it. Not exercised on Linux, where `predict` does not exist: its tests
skip there with that reason.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from whisperbench.backends import greedy
from whisperbench.backends.base import Decoding, Hypothesis, Transcription
from whisperbench.backends.coreml import COMPUTE_UNITS, graphs
from whisperbench.backends.coreml.check import cache_shape


class _Programs:
    def __init__(self, encoder, decoder):
        self.encoder, self.decoder = encoder, decoder

    def encode(self, features: np.ndarray) -> dict:
        outputs = self.encoder.predict({"input_features": features.astype(np.float32)})
        return {name: value for name, value in outputs.items() if name.startswith("cross_")}

    def step(self, inputs: dict):
        outputs = self.decoder.predict(inputs)
        return outputs["logits"], outputs["new_keys"], outputs["new_values"]


class CoreMLTranscriber:
    def __init__(self, programs: _Programs, processor, config, generation_config, decoding: Decoding, units: str):
        self.programs, self.processor = programs, processor
        self.shape, self.rules = cache_shape(config), greedy.Rules.of(generation_config, decoding)
        self.runtime = {"compute_units": units}

    @classmethod
    def load(cls, artifact_dir: Path, options, decoding: Decoding):
        import coremltools as ct
        from transformers import GenerationConfig, WhisperConfig, WhisperProcessor

        units = getattr(ct.ComputeUnit, COMPUTE_UNITS[options.compute_units])
        encoder, decoder = (ct.models.MLModel(str(artifact_dir / p), compute_units=units) for p in graphs.PACKAGES)
        return cls(
            _Programs(encoder, decoder),
            WhisperProcessor.from_pretrained(artifact_dir),
            WhisperConfig.from_pretrained(artifact_dir),
            GenerationConfig.from_pretrained(artifact_dir),
            decoding,
            options.compute_units,
        )

    def transcribe(self, audio: np.ndarray, forced_tokens: int | None = None) -> Transcription:
        rules = self.rules.forced(forced_tokens)
        start = time.perf_counter()
        features = greedy.features(self.processor, audio)
        features_done = time.perf_counter()
        cross = self.programs.encode(features)
        encoder_done = time.perf_counter()
        tokens, times = graphs.greedy(self.programs, cross, self.shape, rules)
        text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
        end = time.perf_counter()
        encoder_ms = (encoder_done - features_done) * 1e3
        return Transcription(text, len(tokens), **greedy.stage_ms(start, features_done, encoder_ms, times, end))

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        """The programs take one utterance: a batch is decoded one by one."""
        results = [self.transcribe(audio) for audio in audios]
        return [Hypothesis(result.text, result.n_tokens) for result in results]
