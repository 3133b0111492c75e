"""How sure a WER and a WER difference are: bootstrap intervals over utterances.

A corpus WER is errors / reference words summed over utterances, so the bootstrap resamples utterances
(with their word counts) and recomputes that ratio; the difference between two cells on the same
utterances is resampled *paired* (the same draw of utterances for both), which removes the variation
between utterances that both cells share. scipy.stats.bootstrap, percentile intervals: BCa is undefined
when every resample gives the same value (two cells with identical transcripts), which is a case a
study meets often (a runtime at fp32 against PyTorch fp32).
"""

from __future__ import annotations

import numpy as np

from whisperbench.metrics.score import normalizer


def utterance_errors(rows: list[dict]) -> dict[str, tuple[int, int]]:
    """{utterance id: (word errors, reference words)} after Whisper's normalizer; empty references left out."""
    import jiwer

    normalize = normalizer()
    counts = {}
    for row in rows:
        if "skipped" in row:
            continue
        reference, hypothesis = normalize(row["reference"]), normalize(row["hypothesis"])
        if not reference.strip():
            continue
        measures = jiwer.process_words(reference, hypothesis)
        words = measures.hits + measures.substitutions + measures.deletions
        counts[row["id"]] = (measures.substitutions + measures.deletions + measures.insertions, words)
    return counts


def _bootstrap(samples: tuple, statistic, draws: int, seed: int, level: float) -> tuple[float, float]:
    from scipy.stats import bootstrap

    result = bootstrap(
        samples,
        statistic,
        n_resamples=draws,
        paired=True,
        vectorized=True,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _ratio(errors, words, axis=-1):
    return np.sum(errors, axis=axis) / np.sum(words, axis=axis)


def _difference(errors, baseline_errors, words, axis=-1):
    return (np.sum(errors, axis=axis) - np.sum(baseline_errors, axis=axis)) / np.sum(words, axis=axis)


def wer_interval(counts: dict, draws: int, seed: int, level: float = 0.95) -> tuple[float, float] | None:
    """The bootstrap interval of a cell's WER over its utterances (None with fewer than two)."""
    if len(counts) < 2:
        return None
    errors, words = (np.array(column, dtype=float) for column in zip(*counts.values(), strict=True))
    return _bootstrap((errors, words), _ratio, draws, seed, level)


def delta_interval(
    counts: dict, baseline: dict, draws: int, seed: int, level: float = 0.95
) -> tuple[float, float] | None:
    """The paired bootstrap interval of WER(cell) - WER(baseline) over the utterances both evaluated."""
    common = sorted(set(counts) & set(baseline))
    if len(common) < 2:
        return None
    errors = np.array([counts[i][0] for i in common], dtype=float)
    baseline_errors = np.array([baseline[i][0] for i in common], dtype=float)
    words = np.array([counts[i][1] for i in common], dtype=float)
    return _bootstrap((errors, baseline_errors, words), _difference, draws, seed, level)
