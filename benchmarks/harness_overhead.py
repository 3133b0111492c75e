"""What the harness adds around a backend's own work, as a share of a real cell's time.

Each pass runs twice on the same built artifact, manifest and params, in this process: once with the real
backend and once with a no-op backend (every transcription returns at once with an empty text), then
writes its rows and record as `scripts/transcribe.py` does. The no-op run's wall time is everything the
harness does itself (reading the manifest, verifying the artifact's checksums, decoding the audio,
timers, provenance, writing rows), apart from loading the model; its share of the real run is the overhead.

    python benchmarks/harness_overhead.py --study . --dataset librispeech-test-other --model tiny.en \
        --backend pytorch --precision fp32 --out benchmarks/results/harness-overhead-2026-12-01.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from whisperbench import config, dag, evaluate
from whisperbench.backends.base import Hypothesis, Transcription
from whisperbench.config import Cell
from whisperbench.io import write_json, write_jsonl
from whisperbench.metrics import provenance


class NoOpTranscriber:
    """A backend that does no work: what is left of a pass's time is the harness."""

    def transcribe(self, audio) -> Transcription:
        return Transcription("", 1, 0.0, 0.0, 0.0, 0.0, 0.0)

    def transcribe_batch(self, audios) -> list[Hypothesis]:
        return [Hypothesis("", 1) for _ in audios]


def _timed_pass(which: str, cell: Cell, params: dict, study: Path, out: Path) -> dict:
    """Wall time of one pass (the model's loading excluded) including writing its outputs."""
    run = evaluate.accuracy_pass if which == "accuracy" else evaluate.timing_pass
    manifest = study / dag.path("manifest" if which == "accuracy" else "timing_manifest", dataset=cell.dataset)
    start = time.perf_counter()
    rows, record = run(
        cell,
        params,
        manifest,
        study / dag.path("model", model=cell.model),
        study / dag.path("artifact", model=cell.model, backend=cell.backend, precision=cell.precision),
        progress=False,
    )
    write_jsonl(out / f"{which}.jsonl", rows)
    write_json(out / f"{which}.json", record)
    return {"wall_s": time.perf_counter() - start - record.get("load_s", 0.0), "n_utterances": len(rows)}


def measure(cell: Cell, params: dict, study: Path) -> dict:
    results = {}
    real_load = evaluate.load_transcriber
    with tempfile.TemporaryDirectory() as scratch:
        for which in ("accuracy", "timing"):
            evaluate.load_transcriber = real_load
            real = _timed_pass(which, cell, params, study, Path(scratch))
            evaluate.load_transcriber = lambda *_: NoOpTranscriber()
            try:
                harness = _timed_pass(which, cell, params, study, Path(scratch))
            finally:
                evaluate.load_transcriber = real_load
            results[which] = {"real": real, "no_op": harness, "overhead": harness["wall_s"] / real["wall_s"]}
    return results


def main(argv=None) -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--study", type=Path, default=Path("."))
    arguments.add_argument("--params", type=Path, default=Path("params.yaml"))
    for name in ("dataset", "model", "backend", "precision"):
        arguments.add_argument(f"--{name}", required=True)
    arguments.add_argument("--out", type=Path, required=True)
    arguments = arguments.parse_args(argv)
    params = config.load(arguments.params)
    cell = Cell(arguments.dataset, arguments.model, arguments.backend, arguments.precision)
    results = measure(cell, params, arguments.study)
    write_json(arguments.out, provenance.record(cell=cell.path, **results))
    for which, result in results.items():
        print(
            f"{which}: real {result['real']['wall_s']:.2f} s, no-op {result['no_op']['wall_s']:.3f} s "
            f"({result['real']['n_utterances']} utterances): harness overhead {100 * result['overhead']:.2f} %"
        )


if __name__ == "__main__":
    main()
