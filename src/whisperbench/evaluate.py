"""Run one cell's two passes (MLPerf splits them the same way: an accuracy run and a performance run).

* accuracy pass: every utterance of the dataset once, in batches, untimed; the hypotheses give WER.
  Jobs run side by side on `accuracy.threads` each.
* timing pass: the dataset's timed subset (`timing.utterances`), warm-ups, then `timing.repeats` timed
  runs of each utterance at batch size 1 (per-stage medians), alone on the machine; optionally also
  the subset in batches of `accuracy.batch_size` (throughput).

Raw output first: one row per utterance. Scoring (and the agreement of the two passes' transcripts)
is a separate step. Utterances longer than the backend's `MAX_AUDIO_S` are kept as rows that say
why they were left out, so the summary counts them.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from whisperbench import artifacts, config
from whisperbench.backends import registry
from whisperbench.backends.base import Decoding, Transcription
from whisperbench.config import Cell
from whisperbench.data import audio as audio_io
from whisperbench.errors import UserError
from whisperbench.io import read_jsonl
from whisperbench.metrics import provenance
from whisperbench.models import fetch

RANDOM_WEIGHTS = "weights: random (shape-true, models/random_weights.py): no WER"
TIMING_FIELDS = ("features_ms", "encoder_ms", "first_token_ms", "decode_ms", "total_ms")
log = logging.getLogger("whisperbench")


def _median_of(runs: list[Transcription]) -> dict:
    medians = {name: statistics.median(getattr(run, name) for run in runs) for name in TIMING_FIELDS}
    n_tokens = runs[0].n_tokens
    medians["decoder_ms_per_token"] = medians["decode_ms"] / (n_tokens - 1) if n_tokens > 1 else None
    return medians


def load_transcriber(cell: Cell, params: dict, artifact_dir: Path, threads: int):
    module = registry.get(cell.backend).load_module()
    options = module.Options.from_params(params["backends"][cell.backend].get("options", {}))
    decoding = Decoding.from_params(params["decoding"])
    return module.load(artifact_dir, cell.precision, options, decoding, threads)


def _check_disjoint(artifact: dict, utterances: list[dict], manifest: Path) -> None:
    overlap = sorted(set(artifact.get("calibration_ids", [])) & {u["id"] for u in utterances})
    if overlap:
        raise UserError(
            f"{manifest}: {len(overlap)} utterance(s) (e.g. {overlap[0]}) were used to calibrate this artifact; "
            "choose a calibration subset that no dataset evaluates (params calibration)"
        )


def _split_long(cell: Cell, utterances: list[dict]) -> tuple[list[dict], list[dict]]:
    """(utterances the backend can transcribe, rows for those it leaves out and why)."""
    limit = getattr(registry.get(cell.backend).load_module(), "MAX_AUDIO_S", None)
    if limit is None:
        return utterances, []
    kept = [u for u in utterances if u["duration_s"] <= limit]
    reason = f"longer than {limit:g} s ({cell.backend} has no long-form decoding)"
    left_out = [
        {"id": u["id"], "reference": u["reference"], "audio_s": u["duration_s"], "skipped": reason}
        for u in utterances
        if u["duration_s"] > limit
    ]
    if left_out:
        log.warning("%s: left out %d of %d utterance(s): %s", cell.path, len(left_out), len(utterances), reason)
    return kept, left_out


class _Pass:
    """What both passes share: the verified artifact, its provenance, the utterances it may run."""

    def __init__(self, cell: Cell, params: dict, manifest: Path, model_dir: Path, artifact_dir: Path):
        self.cell, self.params, self.artifact_dir = cell, params, Path(artifact_dir)
        utterances = read_jsonl(manifest)
        self.artifact = artifacts.verify(artifact_dir)
        self.source = fetch.read_source(model_dir)
        self.failed = self.artifact.get("status") == "failed"
        if not self.failed:
            _check_disjoint(self.artifact, utterances, Path(manifest))
        self.utterances, self.left_out = _split_long(cell, utterances)
        self.synthetic = any(u.get("synthetic") for u in utterances)
        self.random = fetch.is_random(self.source)
        self.model_dir = Path(model_dir)

    def forced_lengths(self) -> list[int | None]:
        """Per utterance, the tokens a random-weight model must decode (its reference's length); None: stop
        at end-of-text as usual."""
        if not self.random:
            return [None] * len(self.utterances)
        from whisperbench.models import random_weights

        references = [u["reference"] for u in self.utterances]
        return random_weights.forced_lengths(
            fetch.hf_dir(self.model_dir), references, self.params["decoding"]["max_new_tokens"]
        )

    def load(self, threads: int):
        start = time.perf_counter()
        transcriber = load_transcriber(self.cell, self.params, self.artifact_dir, threads)
        return transcriber, round(time.perf_counter() - start, 3)

    def _common(self, stage: str) -> dict:
        dataset = self.params["datasets"].get(self.cell.dataset, {})
        asked = self.params["timing"]["utterances"] if stage == "timing" else dataset.get("max_utterances")
        return {
            "cell": asdict(self.cell),
            "stage": stage,
            "n_asked": asked or None,  # what params asked for (None: all); the manifest may hold fewer
            "weights": self.source,
            "artifact": {key: value for key, value in self.artifact.items() if key != "files"},
            "synthetic": self.synthetic,
            "n_left_out": len(self.left_out),
        }

    def record(self, stage: str, **fields) -> dict:
        if self.failed:
            return provenance.record(**self._common(stage), status="failed", reason=self.artifact["reason"], **fields)
        return provenance.record(
            **self._common(stage),
            status="ok",
            decoding=self.params["decoding"],
            backend_options=self.params["backends"][self.cell.backend].get("options", {}),
            **fields,
        )

    def backend_failed(self, stage: str, error: Exception, **fields) -> dict:
        """The backend raised mid-pass: the cell is reported failed with the reason and the study goes on
        (the traceback is kept in the pass's record); a user's mistake or a lack of memory stops the job."""
        import traceback

        reason = f"the {self.cell.backend} backend raised {type(error).__name__}: {error}"[:500]
        log.error("%s %s pass failed: %s", self.cell.path, stage, reason)
        return provenance.record(
            **self._common(stage), status="failed", reason=reason, traceback=traceback.format_exc(), **fields
        )


# Errors a pass lets through (the job fails, a re-run retries); any other error marks the cell failed.
_STOPS_THE_JOB = (UserError, MemoryError)


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _batches(utterances: list[dict], size: int) -> list[list[dict]]:
    """Batches of utterances of similar duration (similar lengths end together, so less padding work)."""
    return _chunks(sorted(utterances, key=lambda u: (u["duration_s"], u["id"])), size)


def _hypothesis_row(utterance: dict, samples, hypothesis) -> dict:
    return {
        "id": utterance["id"],
        "reference": utterance["reference"],
        "hypothesis": hypothesis.text,
        "audio_s": len(samples) / audio_io.SAMPLE_RATE,
        "n_tokens": hypothesis.n_tokens,
    }


def decode_all(transcriber, utterances: list[dict], batch_size: int, progress: bool) -> tuple[list[dict], dict | None]:
    """Every utterance once, in batches; a batch that fails is retried, and the rest run, one at a time."""
    from tqdm import tqdm

    rows, fallback = [], None
    with tqdm(total=len(utterances), unit="utt", disable=not progress) as bar:
        for batch in _batches(utterances, batch_size):
            samples = [audio_io.load(u["audio_path"]) for u in batch]
            if fallback is None and len(batch) > 1:
                try:
                    outputs = transcriber.transcribe_batch(samples)
                except (RuntimeError, MemoryError, ValueError) as error:  # out of memory, a kernel refusing a shape
                    fallback = {"after_utterances": len(rows), "batch_size": batch_size, "error": str(error)[:500]}
                    log.warning("a batch of %d failed (%s); going on one utterance at a time", len(batch), error)
            if fallback is not None or len(batch) == 1:
                outputs = [transcriber.transcribe_batch([one])[0] for one in samples]
            rows += [_hypothesis_row(u, s, h) for u, s, h in zip(batch, samples, outputs, strict=True)]
            bar.update(len(batch))
    return sorted(rows, key=lambda row: row["id"]), fallback


def batch_size_of(cell: Cell, params: dict) -> tuple[int, str | None]:
    """`accuracy.batch_size`, or 1 and the reason where batching would change the cell's transcripts."""
    module = registry.get(cell.backend).load_module()
    reason = module.batch_reason(cell.precision) if hasattr(module, "batch_reason") else None
    return (1, reason) if reason else (params["accuracy"]["batch_size"], None)


def accuracy_pass(cell: Cell, params: dict, manifest: Path, model_dir: Path, artifact_dir: Path, progress=True):
    """Return (per-utterance hypotheses, run record): every utterance once, batched, untimed."""
    run = _Pass(cell, params, manifest, model_dir, artifact_dir)
    settings = params["accuracy"]
    if run.failed:
        return [], run.record("accuracy", n_utterances=0)
    if run.random:  # nothing to score: random weights transcribe noise
        return [], run.record("accuracy", n_utterances=0, wer_unavailable=RANDOM_WEIGHTS)
    batch_size, unbatched = batch_size_of(cell, params)
    threads = config.accuracy_threads(cell.backend, params)
    try:
        transcriber, load_s = run.load(threads)
        start = time.perf_counter()
        rows, fallback = decode_all(transcriber, run.utterances, batch_size, progress)
    except _STOPS_THE_JOB:
        raise
    except Exception as error:
        return run.left_out, run.backend_failed("accuracy", error, threads=threads, n_utterances=0)
    record = run.record(
        "accuracy",
        runtime=getattr(transcriber, "runtime", {}),
        threads=threads,
        threads_reason=None if threads == settings["threads"] else "timing.threads: its numerics depend on them",
        batch_size=batch_size,
        batch_size_reason=unbatched,
        batch_fallback=fallback,
        load_s=load_s,
        wall_s=round(time.perf_counter() - start, 3),  # untimed pass: shared CPU, for planning only
        n_utterances=len(rows),
    )
    return sorted(rows + run.left_out, key=lambda row: row["id"]), record


def _timed_row(utterance: dict, samples, runs: list[Transcription]) -> dict:
    return {
        "id": utterance["id"],
        "hypothesis": runs[0].text,
        "audio_s": len(samples) / audio_io.SAMPLE_RATE,
        "n_tokens": runs[0].n_tokens,
        "repeats": len(runs),
        "all_runs_same_text": all(run.text == runs[0].text for run in runs),
        "total_ms_runs": [round(run.total_ms, 3) for run in runs],  # the spread of repeats: noisy timing shows
        **_median_of(runs),
    }


def _throughput(transcriber, clips: list, batch_size: int, repeats: int) -> dict:
    """Seconds to transcribe the timed subset in batches of `batch_size` (median of repeats)."""
    batches = _chunks(sorted(clips, key=len), batch_size)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            transcriber.transcribe_batch(batch)
        seconds.append(time.perf_counter() - start)
    audio_s = sum(len(clip) for clip in clips) / audio_io.SAMPLE_RATE
    compute_s = statistics.median(seconds)
    return {"batch_size": batch_size, "audio_s": audio_s, "compute_s": compute_s, "rtfx": audio_s / compute_s}


def _time_subset(run: _Pass, params: dict, progress: bool) -> tuple[list[dict], dict]:
    """Load, warm up, then time each utterance of the subset `timing.repeats` times (and the throughput)."""
    from tqdm import tqdm

    timing = params["timing"]
    baseline_rss = provenance.rss_mb()  # the harness alone: what the cell's backend, weights and clips add is theirs
    transcriber, load_s = run.load(timing["threads"])
    clips = [audio_io.load(u["audio_path"]) for u in run.utterances]
    forced = run.forced_lengths()
    loading_rss = provenance.peak_rss_mb()  # imports, weights, sessions and the clips
    separate_peaks = provenance.reset_peak_rss()
    for _ in range(timing["warmup"] if clips else 0):
        transcriber.transcribe(clips[0], forced[0])
    rows = []
    with provenance.OtherLoad() as others:  # a busy machine slows every cell: the table flags it
        timed = list(zip(run.utterances, clips, forced, strict=True))
        for utterance, samples, length in tqdm(timed, unit="utt", disable=not progress):
            runs = [transcriber.transcribe(samples, length) for _ in range(timing["repeats"])]
            rows.append(_timed_row(utterance, samples, runs) | ({"forced_tokens": length} if length else {}))
    throughput = None
    if timing["throughput"] and clips:
        throughput = _throughput(transcriber, clips, batch_size_of(run.cell, params)[0], timing["repeats"])
    return rows, {
        "runtime": getattr(transcriber, "runtime", {}),
        "load_s": load_s,
        "n_utterances": len(rows),
        "throughput": throughput,
        "baseline_rss_mb": round(baseline_rss, 1) if baseline_rss else None,
        "peak_rss_loading_mb": round(loading_rss, 1),
        # while transcribing (warm-ups included); where the peak cannot be reset, the process's lifetime peak
        "peak_rss_mb": round(provenance.peak_rss_since_reset_mb() if separate_peaks else provenance.peak_rss_mb(), 1),
        "peak_rss_separate": separate_peaks,
        **others.record,
    }


def timing_pass(cell: Cell, params: dict, manifest: Path, model_dir: Path, artifact_dir: Path, progress=True):
    """Return (per-utterance timings, run record): the timed subset, warm-ups, then repeats at batch size 1."""
    run = _Pass(cell, params, manifest, model_dir, artifact_dir)
    settings = {key: params["timing"][key] for key in ("threads", "warmup", "repeats")}
    if run.failed:
        return [], run.record("timing", n_utterances=0, **settings)
    unavailable = registry.get(cell.backend).speed_unavailable()
    if unavailable:  # e.g. Core ML off macOS: nothing is timed or estimated, the table says why
        return run.left_out, run.record("timing", n_utterances=0, speed_unavailable=unavailable, **settings)
    try:
        rows, measured = _time_subset(run, params, progress)
    except _STOPS_THE_JOB:
        raise
    except Exception as error:
        return run.left_out, run.backend_failed("timing", error, n_utterances=0, **settings)
    return sorted(rows + run.left_out, key=lambda row: row["id"]), run.record("timing", **settings, **measured)
