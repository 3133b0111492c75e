"""The backend interface every runtime implements, and the timing record they all fill.

A backend module provides:
  * `PRECISIONS`: the precisions it can build;
  * `LIBRARIES`: the packages its results depend on (their versions go into every run record);
  * `unsupported_reason(precision) -> str | None`: why a precision cannot run on this machine;
  * `Options`: a frozen dataclass of its params (`backends.<name>.options`), validated without
    side effects;
  * `prepare(source_dir, precision, options, output_dir, context) -> dict`: build the artifact for
    one precision into output_dir (convert/quantize/save) and return metadata to record; the
    source is the fetched HF folder, or the backend's export when it has one;
  * `load(artifact_dir, precision, options, decoding, threads) -> Transcriber`: `transcribe(audio,
    forced_tokens=None)` times one utterance stage by stage (the timing pass); with `forced_tokens` it
    decodes exactly that many tokens with end-of-text suppressed (random weights, whose own stopping
    point means nothing: the timing pass then does a real transcript's number of decoder steps);
    `transcribe_batch(audios)` decodes several at once, each padded to the 30 s window as a single one
    is (the accuracy pass);
  * optional `batch_reason(precision) -> str | None`: why decoding a batch would change a precision's
    transcripts (e.g. activation ranges taken over the whole batch); its accuracy pass then runs at
    batch size 1 and records the reason;
  * `MAX_AUDIO_S`: the longest utterance it transcribes (30 s: Whisper's window without long-form
    decoding; None when it has long-form decoding). Longer ones are left out of its cells and counted.

A backend that exports once per model also provides (its presence is what makes the DAG export)
  * `export(hf_dir, options, context, check_rows, output_dir) -> dict`: one FP32 export per model,
    shared by all its precisions, checked against PyTorch on `check_rows` (the calibration
    utterances, which the export keeps for calibrated recipes); the returned check is recorded.
Optional hooks, called at params validation: `decoding_problem(decoding) -> str | None`,
`environment_problem(options) -> str | None` (e.g. device cuda without a CUDA build) and
`precision_problem(precision, options) -> str | None` (a precision these options cannot run).
A backend that can mix 4- and 8-bit groups declares `MIXED`, `mixed_scheme` and `mixed_widths` (see
`mixed/plan.py`); one whose format cannot declares `UNMIXABLE = {precision: reason}`.
Optional for the size benchmark (`benchmarks/peers.py`):
`stored_tensors(artifact_dir) -> list[metrics.sizes.StoredTensor]`, the tensors its files store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Transcription:
    """One utterance's output and where its time went (milliseconds)."""

    text: str
    n_tokens: int  # decoder steps after the prompt (generated tokens, end-of-text included)
    features_ms: float  # log-mel feature extraction
    # The encoder's cut point, the same for every backend: the encoder forward pass plus every decoder
    # layer's cross-attention key/value projections of its output (all the work done once per utterance
    # before the first token's decoder step; runtimes that compute them in the decoder move them here).
    encoder_ms: float
    first_token_ms: float  # audio in -> first generated token (features + encoder + first decoder step)
    decode_ms: float  # all decoder steps after the first token
    total_ms: float  # audio in -> text out


@dataclass
class Hypothesis:
    """One utterance's output in a batch (no timings: batches are not timed per utterance)."""

    text: str
    n_tokens: int  # generated tokens, end-of-text included


class Transcriber(Protocol):
    def transcribe(self, audio: np.ndarray, forced_tokens: int | None = None) -> Transcription:
        """Transcribe 16 kHz mono float32 audio (at most 30 s), timing each stage; `forced_tokens`: decode
        exactly that many tokens (end-of-text suppressed until then)."""

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        """Transcribe several utterances at once, with the same decoding rules as `transcribe`."""


@dataclass(frozen=True)
class BackendOptions:
    """Base for backend option dataclasses: built from params, checked with no side effects."""

    @classmethod
    def from_params(cls, options: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known)) or 'none'}")
        return cls(**options)


@dataclass(frozen=True)
class Decoding:
    """The decoding rules shared by every backend (params `decoding`)."""

    language: str = "en"
    task: str = "transcribe"
    num_beams: int = 1
    max_new_tokens: int = 128
    timestamps: bool = False

    @classmethod
    def from_params(cls, decoding: dict) -> Decoding:
        return cls(**decoding)


@dataclass(frozen=True)
class BuildContext:
    """What a build may need besides its source: the decoding rules (calibration runs), threads, and for a
    mixed precision chosen by sensitivity, the model's sensitivity record (mixed/sensitivity.py)."""

    decoding: Decoding
    threads: int
    sensitivity: dict | None = None


def prompt_tokens(generation_config, decoding: Decoding) -> list[int]:
    """The forced decoder prompt, as transformers builds it for short-form greedy decoding."""
    from whisperbench.errors import UserError

    prompt = [generation_config.decoder_start_token_id]
    if getattr(generation_config, "is_multilingual", False):
        language = f"<|{decoding.language}|>"
        if language not in generation_config.lang_to_id:
            raise UserError(f"decoding.language: {decoding.language!r} is not a Whisper language code (e.g. en, de)")
        prompt += [generation_config.lang_to_id[language], generation_config.task_to_id[decoding.task]]
    prompt.append(generation_config.no_timestamps_token_id)
    return prompt


def greedy_without_timestamps(backend: str, decoding: dict) -> str | None:
    """`decoding_problem` of a backend whose own loop decodes greedily and emits no timestamps."""
    if decoding.get("num_beams", 1) != 1:
        return f"decoding.num_beams: {backend} decodes greedily; set 1"
    if decoding.get("timestamps"):
        return f"decoding.timestamps: {backend} decodes without timestamps; set false"
    return None


def pin_feature_threads(threads: int) -> None:
    """transformers' Whisper feature extractor computes its STFT with torch wherever torch is installed
    (its numpy path computes the frames one at a time in Python, several times slower): a backend that uses
    it for features pins torch to the cell's threads, as its own runtime is."""
    import sys

    if (torch := sys.modules.get("torch")) is not None:
        torch.set_num_threads(threads)
