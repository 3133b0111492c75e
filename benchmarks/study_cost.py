"""What a study costs: the old one-pass-per-repeat transcription versus an accuracy pass + a timing pass.

For every cell's built artifact, on the same clips, in one run:
  * `single`: each clip once with `transcribe()` at batch 1 on `timing.threads` threads, alone on the
    machine (one repeat of the old pipeline, and the per-utterance cost of the timing pass);
  * `accuracy at batch 1` and `accuracy at batch B`: the accuracy pass as the DAG runs it with
    `--cores C`: C / `accuracy.threads` processes at once, each decoding its share of the clips with
    `transcribe_batch` (B = the cell's effective `accuracy.batch_size`); the wall time of all of them.

  * `encoder`: the encoder alone per clip at batch 1 on `accuracy.threads` (median of 3 clips; it
    always reads one 30 s window): the part of the accuracy pass that batching does not remove on a CPU.

From these it computes, for a study of N utterances per dataset, the transcription time of the old
pipeline (warm-up + repeats x N per cell, one cell at a time) and of the new one (N in the accuracy
pass + warm-up + repeats x `timing.utterances` in the timing pass), and the ceiling of the saving on
this machine: the new pipeline if the accuracy pass cost only its encoder passes (a free decoder).

    python benchmarks/study_cost.py --params params.yaml --backends pytorch onnxruntime \
        --manifest data/manifests/librispeech-test-other.jsonl --cores 2 --out benchmarks/results/study_cost.json
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from pathlib import Path

from whisperbench import config, dag
from whisperbench.config import Cell
from whisperbench.data import audio as audio_io
from whisperbench.evaluate import batch_size_of, load_transcriber
from whisperbench.io import read_jsonl, write_json
from whisperbench.metrics import provenance

# LibriSpeech test-clean and test-other hold 2620 and 2939 utterances (what published WERs use).
FULL_TEST_SETS = 2620 + 2939


def _single_pass(cell: Cell, params: dict, clips: list) -> list[float]:
    transcriber = load_transcriber(
        cell, params, Path(dag.path("artifact", **cell.__dict__)), params["timing"]["threads"]
    )
    transcriber.transcribe(clips[0])  # warm-up, as the timing pass does
    return [transcriber.transcribe(clip).total_ms / 1e3 for clip in clips]


def _encoder_s(cell: Cell, params: dict, clips: list) -> float:
    transcriber = load_transcriber(
        cell, params, Path(dag.path("artifact", **cell.__dict__)), params["accuracy"]["threads"]
    )
    transcriber.transcribe(clips[0])  # warm-up
    return statistics.median(transcriber.transcribe(clip).encoder_ms for clip in clips[:3]) / 1e3


def _accuracy_worker(cell: Cell, params: dict, paths: list[str], batch_size: int, barrier, results) -> None:
    transcriber = load_transcriber(
        cell, params, Path(dag.path("artifact", **cell.__dict__)), params["accuracy"]["threads"]
    )
    clips = sorted((audio_io.load(path) for path in paths), key=len)
    barrier.wait()  # every worker loaded: start together, as jobs already running would
    start = time.time()
    for first in range(0, len(clips), batch_size):
        transcriber.transcribe_batch(clips[first : first + batch_size])
    results.put((start, time.time()))


def _parallel_accuracy(cell: Cell, params: dict, manifest: list[dict], batch_size: int, jobs: int) -> float:
    """Wall seconds for `jobs` processes to decode the clips between them (durations dealt round-robin)."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(jobs), context.Queue()
    ordered = [row["audio_path"] for row in sorted(manifest, key=lambda row: row["duration_s"])]
    workers = [
        context.Process(target=_accuracy_worker, args=(cell, params, ordered[job::jobs], batch_size, barrier, results))
        for job in range(jobs)
    ]
    for worker in workers:
        worker.start()
    spans = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


def measure(cell: Cell, params: dict, manifest: list[dict], cores: int) -> dict:
    clips = [audio_io.load(row["audio_path"]) for row in manifest]
    single = _single_pass(cell, params, clips)
    jobs = max(1, cores // params["accuracy"]["threads"])
    batch_size, reason = batch_size_of(cell, params)
    batch1 = _parallel_accuracy(cell, params, manifest, 1, jobs)
    return {
        "n": len(manifest),
        "audio_s": sum(len(clip) for clip in clips) / audio_io.SAMPLE_RATE,
        "single_s": sum(single),
        "single_median_s": statistics.median(single),
        "encoder_s": _encoder_s(cell, params, clips),
        "accuracy_jobs": jobs,
        "accuracy_batch1_s": batch1,
        "batch_size": batch_size,
        "batch_size_reason": reason,
        "accuracy_batched_s": _parallel_accuracy(cell, params, manifest, batch_size, jobs)
        if batch_size > 1
        else batch1,
    }


def project(cells: dict, params: dict, utterances: int, datasets: int, accuracy_scale: float = 1.0) -> dict:
    """Transcription hours of a study of `utterances` per dataset, old pipeline vs accuracy + timing passes.

    `accuracy_scale` < 1 projects more cores: the accuracy jobs are independent, the timing pass and the
    old pipeline (one timing slot) do not use them."""
    timing = params["timing"]
    old = timed = accuracy = encoders = 0.0
    for result in cells.values():
        per_utterance = result["single_s"] / result["n"]
        old += (timing["warmup"] + timing["repeats"] * utterances) * per_utterance
        timed += (timing["warmup"] + timing["repeats"] * min(timing["utterances"], utterances)) * per_utterance
        accuracy += utterances * result["accuracy_batched_s"] / result["n"] * accuracy_scale
        encoders += utterances * result["encoder_s"] / result["accuracy_jobs"] * accuracy_scale
    hours = {"old_h": old, "new_h": timed + accuracy, "accuracy_h": accuracy, "free_decoder_new_h": timed + encoders}
    hours = {name: value * datasets / 3600 for name, value in hours.items()}
    return hours | {"speedup": old / (timed + accuracy), "free_decoder_speedup": old / (timed + encoders)}


def main(argv=None) -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--params", default="params.yaml")
    arguments.add_argument("--manifest", required=True, help="the clips to measure on (a dataset manifest)")
    arguments.add_argument("--cores", type=int, default=2, help="cores the DAG would be given (--cores)")
    arguments.add_argument("--backends", nargs="+", help="only these backends' cells (default: every one in params)")
    arguments.add_argument("--out", type=Path, required=True)
    arguments = arguments.parse_args(argv)
    params = config.load(arguments.params)
    manifest = [row for row in read_jsonl(arguments.manifest) if row["duration_s"] <= 30]
    results = {}
    chosen = [c for c in config.cells(params) if not arguments.backends or c.backend in arguments.backends]
    if not chosen:
        raise SystemExit(f"--backends: none of {' '.join(arguments.backends)} is in {arguments.params}'s backends")
    for cell in sorted({Cell("sample", c.model, c.backend, c.precision) for c in chosen}):
        name = f"{cell.model}/{cell.backend}/{cell.precision}"
        results[name] = measure(cell, params, manifest, arguments.cores)
        print(name, results[name], flush=True)
    datasets = len(params["datasets"])
    record = provenance.record(
        params=arguments.params,
        backends=arguments.backends,
        manifest=arguments.manifest,
        cores=arguments.cores,
        accuracy=params["accuracy"],
        timing=params["timing"],
        cells=results,
        default_study=project(results, params, 200, datasets),
        full_test_sets=project(results, params, FULL_TEST_SETS // datasets, datasets),
        # assumes the independent accuracy jobs keep their per-core throughput on 8 cores
        default_study_8_cores=project(results, params, 200, datasets, arguments.cores / 8),
        full_test_sets_8_cores=project(results, params, FULL_TEST_SETS // datasets, datasets, arguments.cores / 8),
    )
    write_json(arguments.out, record)
    for name in ("default_study", "full_test_sets", "default_study_8_cores", "full_test_sets_8_cores"):
        print(name, record[name])


if __name__ == "__main__":
    main()
