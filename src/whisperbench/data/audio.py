"""Read audio as Whisper wants it: 16 kHz mono float32."""

from __future__ import annotations

import numpy as np

from whisperbench.errors import UserError

SAMPLE_RATE = 16_000


def duration_seconds(path: str) -> float:
    import soundfile

    try:
        info = soundfile.info(path)
    except (RuntimeError, OSError) as error:  # soundfile raises LibsndfileError (a RuntimeError)
        raise UserError(f"{path}: unreadable audio ({error}); re-extract or re-download the file") from None
    return info.frames / info.samplerate


def load(path: str) -> np.ndarray:
    import soundfile

    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as error:
        raise UserError(f"{path}: unreadable audio ({error}); re-extract or re-download the file") from None
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
    return mono
