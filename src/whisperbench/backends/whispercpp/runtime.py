"""Running a ggml model through pywhispercpp, with whisper.cpp's own timers."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from whisperbench.backends.base import BackendOptions, Decoding, Hypothesis, Transcription
from whisperbench.backends.whispercpp.ggml import MODEL_FILE

TIMINGS = re.compile(r"(\w+) time =\s*([\d.]+) ms")


class _Stderr:
    """Capture what C code writes to file descriptor 2 (whisper.cpp's timings and logs)."""

    def __enter__(self):
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *_):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode(errors="replace")
        self.file.close()


# whisper.cpp names end-of-text by the vocabulary's string where the model file lists it, else "[_EOT_]"; its
# suppress_regex masks every token whose string matches, at every step (forced length)
EOT_PATTERN = r"<\|endoftext\|>|\[_EOT_\]"


class WhisperCppTranscriber:
    def __init__(self, model, eot: int, max_new_tokens: int, build: dict):
        import _pywhispercpp

        self.model, self.binding, self.eot = model, _pywhispercpp, eot
        self.max_new_tokens = max_new_tokens
        self.runtime = build | {
            # the build's instruction sets and features, as whisper.cpp reports them (the wheel's or a native build)
            "system_info": self.binding.whisper_print_system_info().strip(" |"),
            "flash_attn": bool(model._context_params.flash_attn),
            "threads": model._params.n_threads,
            "cut_points": {
                "encoder": "whisper.cpp encode time (includes the cross-attention K/V)",
                "first_token": "mel + encode + prompt pass (whisper.cpp timers)",
                "decoder": "decode + batched decode + sampling after the prompt pass (whisper.cpp timers)",
            },
        }

    def _length_params(self, limit: int, forced: bool) -> dict:
        """Set on every call: pywhispercpp keeps the params a transcribe() call was given. whisper.cpp ends a
        segment after the token sampled at step max_tokens (counted from 0): max_tokens = limit - 1 decodes at
        most `limit` tokens (measured: 9 -> 9, 30 -> 30)."""
        return {"max_tokens": max(limit - 1, 1), "suppress_regex": EOT_PATTERN if forced else ""}

    def _run(self, audio: np.ndarray, forced_tokens: int | None = None) -> tuple[str, int, dict, float]:
        context = self.model._ctx
        self.binding.whisper_reset_timings(context)
        limit = forced_tokens or self.max_new_tokens
        length = self._length_params(limit, forced_tokens is not None)
        start = time.perf_counter()
        with _Stderr():
            segments = self.model.transcribe(np.ascontiguousarray(audio, dtype=np.float32), **length)
        wall_ms = (time.perf_counter() - start) * 1e3
        with _Stderr() as captured:
            self.binding.whisper_print_timings(context)
        timings = {key: float(value) for key, value in TIMINGS.findall(captured.text)}
        tokens = sum(
            sum(
                1
                for j in range(self.binding.whisper_full_n_tokens(context, i))
                if self.binding.whisper_full_get_token_id(context, i, j) < self.eot
            )
            for i in range(self.binding.whisper_full_n_segments(context))
        )
        # + the end-of-text step, except where the limit ended the decode (always so at a forced length)
        return "".join(segment.text for segment in segments), tokens + (tokens < limit), timings, wall_ms

    def transcribe(self, audio: np.ndarray, forced_tokens: int | None = None) -> Transcription:
        text, n_tokens, timings, wall_ms = self._run(audio, forced_tokens)
        first = timings.get("mel", 0.0) + timings.get("encode", 0.0) + timings.get("prompt", 0.0)
        return Transcription(
            text=text,
            n_tokens=n_tokens,
            features_ms=timings.get("mel", 0.0),
            encoder_ms=timings.get("encode", 0.0),
            first_token_ms=first,
            decode_ms=sum(timings.get(key, 0.0) for key in ("decode", "batchd", "sample")),
            total_ms=wall_ms,
        )

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        """whisper_full decodes one utterance at a time."""
        return [Hypothesis(*self._run(audio)[:2]) for audio in audios]


def load(artifact_dir: Path, precision: str, options: BackendOptions, decoding: Decoding, threads: int):
    from whisperbench.backends.whispercpp import native

    build = native.use(options.build)
    from pywhispercpp.model import Model

    # the file itself, not transformers' GenerationConfig: transformers would bring torch into the process
    eot = json.loads((Path(artifact_dir) / "generation_config.json").read_text())["eos_token_id"]
    with _Stderr() as log:
        model = Model(
            str(Path(artifact_dir) / MODEL_FILE),
            context_params={"flash_attn": options.flash_attn},
            n_threads=threads,
            print_progress=False,
            print_realtime=False,
            print_timestamps=False,
            no_context=True,
            no_timestamps=True,
            single_segment=True,
            temperature=0.0,
            temperature_inc=0.0,
            greedy={"best_of": 1},
            suppress_blank=True,
            suppress_nst=True,
            max_tokens=decoding.max_new_tokens,
            language=decoding.language,
            translate=decoding.task == "translate",
        )
    if not model._ctx:  # whisper.cpp refused the file; using the context would crash the process
        reason = [line for line in log.text.splitlines() if "whisper_model_load:" in line][-1:]
        raise RuntimeError(f"whisper.cpp could not load {artifact_dir / MODEL_FILE}: {' '.join(reason)}")
    return WhisperCppTranscriber(model, eot, decoding.max_new_tokens, build)
