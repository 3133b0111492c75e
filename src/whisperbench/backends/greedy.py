"""What every greedy loop of ours shares (ONNX Runtime's, Core ML's, the sensitivity pass's): the decoding
rules transformers applies in short-form greedy decoding, the log-mel features, and the stage times at the
shared cut points. A runtime whose API decodes by itself (PyTorch's generate, CTranslate2, whisper.cpp) is
given the same rules in its own terms.
"""

from __future__ import annotations

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
