"""Run one cell: load the artifact, warm up, transcribe every manifest utterance with repeats.

Raw output first: one row per utterance with the hypothesis, reference, audio seconds and
per-stage timings (medians over repeats). Scoring is a separate step.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from pathlib import Path

from whisperbench import artifacts
from whisperbench.backends import registry
from whisperbench.backends.base import Decoding, Transcription
from whisperbench.config import Cell
from whisperbench.data import audio as audio_io
from whisperbench.errors import UserError
from whisperbench.io import read_jsonl
from whisperbench.metrics import provenance
from whisperbench.models import fetch

TIMING_FIELDS = ("features_ms", "encoder_ms", "first_token_ms", "decode_ms", "total_ms")


def _median_of(runs: list[Transcription]) -> dict:
    medians = {name: statistics.median(getattr(run, name) for run in runs) for name in TIMING_FIELDS}
    n_tokens = runs[0].n_tokens
    medians["decoder_ms_per_token"] = medians["decode_ms"] / (n_tokens - 1) if n_tokens > 1 else None
    return medians


def load_transcriber(cell: Cell, params: dict, artifact_dir: Path):
    backend = registry.get(cell.backend)
    module = backend.load_module()
    options = module.Options.from_params(params["backends"][cell.backend].get("options", {}))
    decoding = Decoding.from_params(params["decoding"])
    return module.load(artifact_dir, cell.precision, options, decoding, params["timing"]["threads"])


def _check_disjoint(artifact: dict, utterances: list[dict], manifest: Path) -> None:
    overlap = sorted(set(artifact.get("calibration_ids", [])) & {u["id"] for u in utterances})
    if overlap:
        raise UserError(
            f"{manifest}: {len(overlap)} utterance(s) (e.g. {overlap[0]}) were used to calibrate this artifact; "
            "choose a calibration subset that no dataset evaluates (params calibration)"
        )


def _failed_run(cell: Cell, params: dict, source: dict, artifact: dict) -> dict:
    """The run record of a cell whose artifact recipe failed: nothing to time, the reason kept."""
    return provenance.record(
        cell=asdict(cell),
        status="failed",
        reason=artifact["reason"],
        threads=params["timing"]["threads"],
        warmup=params["timing"]["warmup"],
        repeats=params["timing"]["repeats"],
        weights=source,
        artifact={key: value for key, value in artifact.items() if key != "files"},
        n_utterances=0,
    )


def transcribe_cell(
    cell: Cell, params: dict, manifest: Path, model_dir: Path, artifact_dir: Path, progress: bool = True
):
    """Return (per-utterance rows, run record) for one cell."""
    from tqdm import tqdm

    timing = params["timing"]
    utterances = read_jsonl(manifest)
    artifact = artifacts.verify(artifact_dir)
    source = fetch.read_source(model_dir)
    if artifact.get("status") == "failed":
        return [], _failed_run(cell, params, source, artifact)
    _check_disjoint(artifact, utterances, manifest)
    load_start = time.perf_counter()
    transcriber = load_transcriber(cell, params, Path(artifact_dir))
    load_s = time.perf_counter() - load_start
    if utterances:
        first = audio_io.load(utterances[0]["audio_path"])
        for _ in range(timing["warmup"]):
            transcriber.transcribe(first)
    rows = []
    for utterance in tqdm(utterances, desc=cell.path, unit="utt", disable=not progress):
        samples = audio_io.load(utterance["audio_path"])
        runs = [transcriber.transcribe(samples) for _ in range(timing["repeats"])]
        rows.append(
            {
                "id": utterance["id"],
                "reference": utterance["reference"],
                "hypothesis": runs[0].text,
                "audio_s": len(samples) / audio_io.SAMPLE_RATE,
                "n_tokens": runs[0].n_tokens,
                "repeats": len(runs),
                "all_runs_same_text": all(run.text == runs[0].text for run in runs),
                **_median_of(runs),
            }
        )
    run = provenance.record(
        cell=asdict(cell),
        status="ok",
        runtime=getattr(transcriber, "runtime", {}),
        threads=timing["threads"],
        warmup=timing["warmup"],
        repeats=timing["repeats"],
        decoding=params["decoding"],
        backend_options=params["backends"][cell.backend].get("options", {}),
        synthetic=any(u.get("synthetic") for u in utterances),
        weights=source,
        artifact={key: value for key, value in artifact.items() if key != "files"},
        load_s=round(load_s, 3),
        n_utterances=len(rows),
        peak_rss_mb=round(provenance.peak_rss_mb(), 1),
    )
    return rows, run
