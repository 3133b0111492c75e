"""A deterministic utterance subset, written as a manifest (one JSON object per line)."""

from __future__ import annotations

import random
from collections import defaultdict

from whisperbench.data import audio
from whisperbench.data.librispeech import Utterance


def select(utterances: list[Utterance], max_count: int | None, seed: int) -> list[Utterance]:
    """Up to `max_count` utterances, taken round-robin over speakers in a seeded order.

    Spreading over speakers keeps a small subset from being one voice; the seed makes the
    subset the same on every machine. The result is sorted by id so manifests diff cleanly.
    """
    if max_count is None or max_count >= len(utterances):
        return sorted(utterances, key=lambda u: u.utterance_id)
    rng = random.Random(seed)
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utterance in sorted(utterances, key=lambda u: u.utterance_id):
        by_speaker[utterance.speaker].append(utterance)
    speakers = sorted(by_speaker)
    rng.shuffle(speakers)
    for speaker in speakers:
        rng.shuffle(by_speaker[speaker])
    chosen: list[Utterance] = []
    while len(chosen) < max_count:
        for speaker in speakers:
            if by_speaker[speaker] and len(chosen) < max_count:
                chosen.append(by_speaker[speaker].pop())
    return sorted(chosen, key=lambda u: u.utterance_id)


def rows(utterances: list[Utterance], dataset: str, origin: str, synthetic: bool) -> list[dict]:
    """Manifest rows; reading each file's header here catches a corrupt file before inference."""
    return [
        {
            "id": u.utterance_id,
            "dataset": dataset,
            "speaker": u.speaker,
            "audio_path": u.audio_path,
            "duration_s": round(audio.duration_seconds(u.audio_path), 4),
            "reference": u.reference,
            "synthetic": synthetic,
            "origin": origin,
        }
        for u in utterances
    ]
