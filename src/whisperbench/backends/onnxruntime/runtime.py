"""ONNX Runtime sessions and the greedy decoding loop over the two graphs (batched, KV cache)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from whisperbench.backends import greedy
from whisperbench.backends.base import Decoding, Hypothesis, Transcription, pin_feature_threads
from whisperbench.backends.onnxruntime import PROVIDERS, Options, environment_problem, graphs


def session_options(options: Options, threads: int):
    import onnxruntime

    levels = {
        "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    session = onnxruntime.SessionOptions()
    session.intra_op_num_threads = threads
    session.inter_op_num_threads = 1
    session.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    session.graph_optimization_level = levels[options.graph_optimization_level]
    session.log_severity_level = 3
    return session


class OnnxTranscriber:
    def __init__(self, encoder, decoder, processor, generation_config, decoding: Decoding):
        self.encoder, self.decoder = encoder, decoder
        self.processor = processor
        self.rules = greedy.Rules.of(generation_config, decoding)
        names = [i.name for i in decoder.get_inputs()]
        self.past_names = [n for n in names if n.startswith("past_")]
        self.encoder_outputs = [o.name for o in encoder.get_outputs() if o.name.startswith("cross_")]
        self.past_shapes = {i.name: (i.shape[1], i.shape[3]) for i in decoder.get_inputs() if i.name in self.past_names}

    @property
    def runtime(self) -> dict:
        providers = self.decoder.get_providers()
        return {"device": "cuda" if providers[0] == "CUDAExecutionProvider" else "cpu", "providers": providers}

    def features(self, audio: np.ndarray | list[np.ndarray]) -> np.ndarray:
        return greedy.features(self.processor, audio)

    def _step(self, tokens: np.ndarray, past: dict, cross: dict) -> tuple[np.ndarray, dict]:
        outputs = self.decoder.run(None, {"input_ids": tokens, **past, **cross})
        return outputs[0][:, -1], dict(zip(self.past_names, outputs[1:], strict=True))

    def _greedy(self, cross: dict, batch: int, forced: int | None = None) -> tuple[list[list[int]], list[float]]:
        """Greedy decoding of a batch from an empty cache (`forced`: exactly that many tokens, end-of-text
        suppressed)."""
        past = {name: np.zeros((batch, heads, 0, size), np.float32) for name, (heads, size) in self.past_shapes.items()}
        return greedy.decode_batch(self._step, past, cross, self.rules.forced(forced), batch)

    def transcribe_features(self, features: np.ndarray, forced_tokens: int | None = None):
        encoded = self.encoder.run(self.encoder_outputs, {"input_features": features})
        encoder_done = time.perf_counter()
        cross = dict(zip(self.encoder_outputs, encoded, strict=True))  # named as the decoder's inputs
        tokens, times = self._greedy(cross, len(features), forced_tokens)
        return tokens, times, encoder_done

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        """Encode one utterance at a time, decode the batch together.

        Batching the encoder does not pay on CPU (attention's [batch, heads, 1500, 1500] scores leave the
        cache): fp32 tiny.en 237 ms per utterance alone, 255 in a batch of 8; base 548 / 607
        (benchmarks/results/onnx-session-2026-12-07.md); the decoder steps do gain from a batch.
        """
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, RuntimeException

        try:
            encoded = [self.encoder.run(self.encoder_outputs, {"input_features": self.features(a)}) for a in audios]
            cross = {name: np.concatenate(parts) for name, *parts in zip(self.encoder_outputs, *encoded, strict=True)}
            tokens, _ = self._greedy(cross, len(audios))
        except (Fail, RuntimeException) as error:  # e.g. an allocation that failed: the caller retries smaller
            raise RuntimeError(f"onnxruntime: {error}") from error
        texts = self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [Hypothesis(text, len(row)) for text, row in zip(texts, tokens, strict=True)]

    def transcribe(self, audio: np.ndarray, forced_tokens: int | None = None) -> Transcription:
        start = time.perf_counter()
        features = self.features(audio)
        features_done = time.perf_counter()
        batch_tokens, times, encoder_done = self.transcribe_features(features, forced_tokens)
        tokens = batch_tokens[0]
        text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
        end = time.perf_counter()
        encoder_ms = (encoder_done - features_done) * 1e3
        return Transcription(text, len(tokens), **greedy.stage_ms(start, features_done, encoder_ms, times, end))


def load(artifact_dir: Path, precision: str, options: Options, decoding: Decoding, threads: int) -> OnnxTranscriber:
    import onnxruntime
    import transformers
    from transformers import GenerationConfig, WhisperProcessor

    from whisperbench.errors import UserError

    problem = environment_problem(options)
    if problem:
        raise UserError(f"backends.onnxruntime.options.{problem}")
    transformers.logging.set_verbosity_error()
    artifact_dir = Path(artifact_dir)
    providers = [PROVIDERS[options.device]] + (["CPUExecutionProvider"] if options.device != "cpu" else [])
    sessions = [
        onnxruntime.InferenceSession(str(artifact_dir / name), session_options(options, threads), providers=providers)
        for name in graphs.GRAPHS
    ]
    if isinstance(sessions[1].get_inputs()[0].shape[0], int):
        raise UserError(
            f"{artifact_dir}: built from an export with a fixed batch of 1 (before batched decoding); delete it and "
            "its data/exports/<model>/onnxruntime folder and re-run"
        )
    processor = WhisperProcessor.from_pretrained(artifact_dir)
    pin_feature_threads(threads)
    return OnnxTranscriber(*sessions, processor, GenerationConfig.from_pretrained(artifact_dir), decoding)
