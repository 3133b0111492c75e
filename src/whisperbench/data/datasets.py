"""A dataset id from params (or the calibration set) → its utterance subset as manifest rows."""

from __future__ import annotations

import logging
from pathlib import Path

from whisperbench.data import hf, librispeech, manifest, synthetic
from whisperbench.errors import UserError

# Whisper sees 30 s windows. Evaluation manifests keep longer utterances (a backend without long-form
# decoding leaves them out of its cell, counted in the summary); the calibration set drops them, since
# its clips feed the encoder whole (export check, activation ranges).
MAX_SECONDS = 30.0
# The synthetic corpus's calibration split: every 4th sentence, never in an evaluation manifest.
CALIBRATION_EVERY = 4
CALIBRATION = "calibration"
log = logging.getLogger("whisperbench")


def _synthetic_split(utterances: list, calibration: bool) -> list:
    return [
        u for index, u in enumerate(utterances) if (index % CALIBRATION_EVERY == CALIBRATION_EVERY - 1) == calibration
    ]


def _pool(name: str, spec: dict, params: dict, corpus_dir: str | None, calibration: bool):
    """Every utterance the dataset (or calibration set) can draw from, where they came from, and how to
    make the chosen ones readable files (only Hugging Face datasets need writing out)."""
    if spec["source"] == "synthetic":
        if not corpus_dir:
            raise UserError(f"{name}: a synthetic dataset needs --corpus (the synthesize step's folder)")
        utterances, origin = synthetic.read_corpus(corpus_dir)
        return _synthetic_split(utterances, calibration), origin, None
    if spec["source"] == "hf":
        pool = hf.HFPool(spec, name)
        return pool.utterances, pool.origin, pool.materialize
    utterances, origin = librispeech.subset_utterances(spec["subset"], params["librispeech"])
    return utterances, origin, None


def _files(chosen: list, materialize, clips_dir: str | None, name: str) -> list:
    if materialize is None:
        return chosen
    if not clips_dir:
        raise UserError(f"{name}: a Hugging Face dataset needs --clips (the folder its audio is written to)")
    return materialize(chosen, Path(clips_dir))


def _dataset(dataset_id: str, params: dict) -> dict:
    if dataset_id not in params["datasets"]:
        raise UserError(
            f"--dataset {dataset_id}: not a key of datasets in params; known: {', '.join(params['datasets'])}"
        )
    return params["datasets"][dataset_id]


def manifest_rows(dataset_id: str, params: dict, corpus_dir: str | None = None, clips_dir: str | None = None):
    """The evaluated subset: `max_utterances` of the dataset, utterances over 30 s included (flagged by duration)."""
    spec, name = _dataset(dataset_id, params), f"datasets.{dataset_id}"
    utterances, origin, materialize = _pool(name, spec, params, corpus_dir, calibration=False)
    chosen = _files(manifest.select(utterances, spec["max_utterances"], spec["seed"]), materialize, clips_dir, name)
    rows = manifest.rows(chosen, dataset_id, origin, synthetic=spec["source"] == "synthetic")
    if spec["max_utterances"] and len(rows) < spec["max_utterances"]:
        log.warning("%s: asked for %d utterances, the data holds %d", name, spec["max_utterances"], len(rows))
    return rows


def timing_rows(dataset_id: str, params: dict, corpus_dir: str | None = None, clips_dir: str | None = None):
    """The timed subset: the first `timing.utterances` of the selection order (inside the evaluated subset)."""
    spec, name = _dataset(dataset_id, params), f"datasets.{dataset_id}"
    utterances, origin, materialize = _pool(name, spec, params, corpus_dir, calibration=False)
    count = params["timing"]["utterances"]
    chosen = sorted(manifest.selection_order(utterances, spec["seed"])[:count], key=lambda u: u.utterance_id)
    if len(chosen) < count:
        log.warning(
            "timing.utterances: asked for %d utterances of %s, the data holds %d", count, dataset_id, len(chosen)
        )
    chosen = _files(chosen, materialize, clips_dir, name)
    return manifest.rows(chosen, dataset_id, origin, synthetic=spec["source"] == "synthetic")


def calibration_rows(params: dict, corpus_dir: str | None = None) -> list[dict]:
    """The calibration utterances (params `calibration`): disjoint from every evaluation manifest, at most 30 s."""
    spec = params["calibration"]
    utterances, origin, materialize = _pool(CALIBRATION, spec, params, corpus_dir, calibration=True)
    chosen = _files(manifest.select(utterances, spec["max_utterances"], spec["seed"]), materialize, None, CALIBRATION)
    rows = manifest.rows(chosen, CALIBRATION, origin, synthetic=spec["source"] == "synthetic")
    if spec["max_utterances"] and len(rows) < spec["max_utterances"]:
        log.warning("calibration: asked for %d utterances, the data holds %d", spec["max_utterances"], len(rows))
    kept = [row for row in rows if row["duration_s"] <= MAX_SECONDS]
    if len(kept) < len(rows):
        log.warning("calibration: left out %d utterance(s) longer than %.0f s", len(rows) - len(kept), MAX_SECONDS)
    return kept
