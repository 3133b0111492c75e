"""A dataset id from params (or the calibration set) → its utterance subset as manifest rows."""

from __future__ import annotations

import logging

from whisperbench.data import librispeech, manifest, synthetic
from whisperbench.errors import UserError

# Whisper sees 30 s windows; longer utterances need long-form decoding, which the
# benchmarks compared here do not use, so they are left out (and the count logged).
MAX_SECONDS = 30.0
# The synthetic corpus's calibration split: every 4th sentence, never in an evaluation manifest.
CALIBRATION_EVERY = 4
CALIBRATION = "calibration"
log = logging.getLogger("whisperbench")


def _synthetic_split(utterances: list, calibration: bool) -> list:
    return [
        u for index, u in enumerate(utterances) if (index % CALIBRATION_EVERY == CALIBRATION_EVERY - 1) == calibration
    ]


def _rows(name: str, spec: dict, params: dict, corpus_dir: str | None, calibration: bool) -> list[dict]:
    if spec["source"] == "synthetic":
        if not corpus_dir:
            raise UserError(f"{name}: a synthetic dataset needs --corpus (the synthesize step's folder)")
        utterances, origin = synthetic.read_corpus(corpus_dir)
        utterances = _synthetic_split(utterances, calibration)
    else:
        utterances, origin = librispeech.subset_utterances(spec["subset"], params["librispeech"])
    chosen = manifest.select(utterances, spec["max_utterances"], spec["seed"])
    rows = manifest.rows(chosen, name, origin, synthetic=spec["source"] == "synthetic")
    kept = [row for row in rows if row["duration_s"] <= MAX_SECONDS]
    if len(kept) < len(rows):
        log.info("left out %d utterance(s) longer than %.0f s", len(rows) - len(kept), MAX_SECONDS)
    return kept


def manifest_rows(dataset_id: str, params: dict, corpus_dir: str | None = None) -> list[dict]:
    if dataset_id not in params["datasets"]:
        raise UserError(
            f"--dataset {dataset_id}: not a key of datasets in params; known: {', '.join(params['datasets'])}"
        )
    return _rows(f"datasets.{dataset_id}", params["datasets"][dataset_id], params, corpus_dir, calibration=False)


def calibration_rows(params: dict, corpus_dir: str | None = None) -> list[dict]:
    """The calibration utterances (params `calibration`): disjoint from every evaluation manifest."""
    return _rows(CALIBRATION, params["calibration"], params, corpus_dir, calibration=True)
