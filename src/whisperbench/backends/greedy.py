"""What every greedy loop of ours shares (ONNX Runtime's, Core ML's, the sensitivity pass's): the decoding
rules transformers applies in short-form greedy decoding, the log-mel features, and the stage times at the
shared cut points. A runtime whose API decodes by itself (PyTorch's generate, CTranslate2, whisper.cpp) is
given the same rules in its own terms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from whisperbench.backends.base import Decoding, prompt_tokens

SAMPLING_RATE = 16000


@dataclass(frozen=True)
class Rules:
    """The forced prompt, the end-of-text token, the tokens suppressed at every step and at the first one,
    and the most tokens to generate."""

    prompt: tuple[int, ...]
    eos: int
    suppress: tuple[int, ...]
    begin_suppress: tuple[int, ...]
    max_new_tokens: int

    @classmethod
    def of(cls, generation_config, decoding: Decoding) -> Rules:
        return cls(
            prompt=tuple(prompt_tokens(generation_config, decoding)),
            eos=generation_config.eos_token_id,
            suppress=tuple(generation_config.suppress_tokens or ()),
            begin_suppress=tuple(generation_config.begin_suppress_tokens or ()),
            max_new_tokens=decoding.max_new_tokens,
        )

    def forced(self, length: int | None) -> Rules:
        """Exactly `length` tokens, end-of-text suppressed (random weights' timing; None: these rules)."""
        if length is None:
            return self
        return replace(self, max_new_tokens=length, suppress=(*self.suppress, self.eos))

    def suppressed(self, first: bool) -> list[int]:
        """The tokens no step may choose (at the first generated step, the begin-suppressed ones too)."""
        return list(self.suppress + (self.begin_suppress if first else ()))

    def pick(self, logits: np.ndarray, first: bool) -> np.ndarray:
        """The greedy choice over the last axis of [..., vocab] logits, suppressed tokens excluded."""
        logits = np.array(logits, np.float32)
        logits[..., self.suppressed(first)] = -np.inf
        return logits.argmax(axis=-1)


def features(processor, audio: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Whisper's log-mel features of one utterance or a list of them, [batch, mels, 3000] float32."""
    extractor = processor.feature_extractor
    return extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="np").input_features.astype(np.float32)


def stage_ms(start: float, features_done: float, encoder_ms: float, steps: list[float], end: float) -> dict:
    """A `Transcription`'s times from perf_counter readings: audio in (start), features out, each generated
    token's step (steps) and text out (end); the encoder's ms as the backend measured it."""
    return {
        "features_ms": (features_done - start) * 1e3,
        "encoder_ms": encoder_ms,
        "first_token_ms": ((steps[0] if steps else end) - start) * 1e3,
        "decode_ms": (steps[-1] - steps[0]) * 1e3 if steps else 0.0,
        "total_ms": (end - start) * 1e3,
    }


# One decoder step over a growing cache: (tokens [batch, 1], cache, cross) -> (next-token logits [batch, vocab],
# the cache with this step appended). Cache and cross are {name: array [batch, ...]}.
Step = Callable[[np.ndarray, dict, dict], tuple[np.ndarray, dict]]


def decode_batch(step: Step, cache: dict, cross: dict, rules: Rules, batch: int) -> tuple[list[list[int]], list[float]]:
    """Greedy decoding of a batch over a decoder step with a growing self-attention cache: the prompt forced,
    then `rules.pick` each step; rows that have ended leave the batch (their cache and cross rows dropped), so
    the rest decode as a smaller one. Returns each row's tokens and each generated step's perf_counter time."""
    tokens = np.full(batch, rules.prompt[0], dtype=np.int64)
    generated: list[list[int]] = [[] for _ in range(batch)]
    rows, times = np.arange(batch), []  # rows: the batch rows still decoding
    for position in range(len(rules.prompt) - 1 + rules.max_new_tokens):
        logits, cache = step(tokens[:, None], cache, cross)
        if position + 1 < len(rules.prompt):
            tokens = np.full(len(rows), rules.prompt[position + 1], dtype=np.int64)
            continue
        tokens = rules.pick(logits, first=not times)
        for row, token in zip(rows, tokens, strict=True):
            generated[row].append(int(token))
        times.append(time.perf_counter())
        going = tokens != rules.eos
        if not going.any():
            break
        if not going.all():
            rows, tokens = rows[going], tokens[going]
            cache = {name: value[going] for name, value in cache.items()}
            cross = {name: value[going] for name, value in cross.items()}
    return generated, times
