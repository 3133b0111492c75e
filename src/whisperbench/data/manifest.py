"""A deterministic utterance subset, written as a manifest (one JSON object per line)."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from whisperbench.data import audio
from whisperbench.data.librispeech import Utterance


def selection_order(utterances: list[Utterance], seed: int) -> list[Utterance]:
    """Every utterance, in a seeded round-robin over speakers (each speaker's clips in seeded order).

    Taking a prefix of this order spreads a small subset over voices, and any shorter prefix is a
    subset of a longer one: the timing subset (first `timing.utterances`) stays inside the evaluated
    subset (first `max_utterances`) and does not change when `max_utterances` does.
    """
    rng = random.Random(seed)
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utterance in sorted(utterances, key=lambda u: u.utterance_id):
        by_speaker[utterance.speaker].append(utterance)
    speakers = sorted(by_speaker)
    rng.shuffle(speakers)
    for speaker in speakers:
        rng.shuffle(by_speaker[speaker])
    order: list[Utterance] = []
    while len(order) < len(utterances):
        order += [by_speaker[speaker].pop() for speaker in speakers if by_speaker[speaker]]
    return order


def select(utterances: list[Utterance], max_count: int | None, seed: int) -> list[Utterance]:
    """Up to `max_count` utterances: a prefix of `selection_order`, sorted by id so manifests diff cleanly."""
    if max_count is None or max_count >= len(utterances):
        return sorted(utterances, key=lambda u: u.utterance_id)
    return sorted(selection_order(utterances, seed)[:max_count], key=lambda u: u.utterance_id)


def portable_path(path: str) -> str:
    """A path under the working folder relative to it (a study copied elsewhere still finds it), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def rows(utterances: list[Utterance], dataset: str, origin: str, synthetic: bool) -> list[dict]:
    """Manifest rows; reading each file's header here catches a corrupt file before inference."""
    return [
        {
            "id": u.utterance_id,
            "dataset": dataset,
            "speaker": u.speaker,
            "audio_path": portable_path(u.audio_path),
            "duration_s": round(audio.duration_seconds(u.audio_path), 4),
            "reference": u.reference,
            "synthetic": synthetic,
            "origin": origin,
        }
        for u in utterances
    ]
