"""A dataset id from params → its utterance subset as manifest rows."""

from __future__ import annotations

import logging

from whisperbench.data import librispeech, manifest, synthetic
from whisperbench.errors import UserError

# Whisper sees 30 s windows; longer utterances need long-form decoding, which the
# benchmarks compared here do not use, so they are left out (and the count logged).
MAX_SECONDS = 30.0
log = logging.getLogger("whisperbench")


def manifest_rows(dataset_id: str, params: dict, corpus_dir: str | None = None) -> list[dict]:
    if dataset_id not in params["datasets"]:
        raise UserError(
            f"--dataset {dataset_id}: not a key of datasets in params; known: {', '.join(params['datasets'])}"
        )
    spec = params["datasets"][dataset_id]
    if spec["source"] == "synthetic":
        if not corpus_dir:
            raise UserError(f"datasets.{dataset_id}: a synthetic dataset needs --corpus (the synthesize step's folder)")
        utterances, origin = synthetic.read_corpus(corpus_dir)
    else:
        utterances, origin = librispeech.subset_utterances(spec["subset"], params["librispeech"])
    chosen = manifest.select(utterances, spec["max_utterances"], spec["seed"])
    rows = manifest.rows(chosen, dataset_id, origin, synthetic=spec["source"] == "synthetic")
    kept = [row for row in rows if row["duration_s"] <= MAX_SECONDS]
    if len(kept) < len(rows):
        log.info("left out %d utterance(s) longer than %.0f s", len(rows) - len(kept), MAX_SECONDS)
    return kept
