"""Encoder latency of built ONNX Runtime artifacts: warm-ups, then the median of repeats, fixed threads.

The encoder always reads a 30 s log-mel window, so its cost does not depend on the audio; the input
is the features of a real LibriSpeech clip when --audio is given, else of 30 s of silence.

    python benchmarks/onnx_encoder.py --artifacts data/artifacts/tiny.en/onnxruntime \
        --precisions fp32 int8_dynamic int8_static int4 fp16 --threads 2 --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from whisperbench.backends import onnxruntime as backend
from whisperbench.backends.base import Decoding
from whisperbench.io import write_json
from whisperbench.metrics import provenance


def encoder_ms(artifact_dir: Path, precision: str, audio: np.ndarray, threads: int, warmup: int, repeats: int):
    transcriber = backend.load(artifact_dir, precision, backend.Options(), Decoding(), threads)
    feed = {"input_features": transcriber.features(audio)}
    for _ in range(warmup):
        transcriber.encoder.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        transcriber.encoder.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


def main(argv=None) -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--artifacts", type=Path, required=True, help="data/artifacts/<model>/onnxruntime")
    arguments.add_argument("--precisions", nargs="+", default=["fp32", "int8_dynamic"])
    arguments.add_argument("--audio", help="a 16 kHz clip (default: 30 s of silence)")
    arguments.add_argument("--threads", type=int, default=2)
    arguments.add_argument("--warmup", type=int, default=3)
    arguments.add_argument("--repeats", type=int, default=15)
    arguments.add_argument("--out", type=Path, required=True)
    arguments = arguments.parse_args(argv)
    if arguments.audio:
        from whisperbench.data import audio as audio_io

        audio = audio_io.load(arguments.audio)
    else:
        audio = np.zeros(16000 * 30, np.float32)
    results = {
        precision: encoder_ms(
            arguments.artifacts / precision, precision, audio, arguments.threads, arguments.warmup, arguments.repeats
        )
        for precision in arguments.precisions
    }
    baseline = results.get("fp32", {}).get("median_ms")
    for timing in results.values():
        timing["speedup_vs_fp32"] = baseline / timing["median_ms"] if baseline else None
    record = provenance.record(
        artifacts=str(arguments.artifacts),
        threads=arguments.threads,
        warmup=arguments.warmup,
        repeats=arguments.repeats,
        encoder=results,
    )
    write_json(arguments.out, record)
    for precision, timing in results.items():
        print(f"{precision:>13}: {timing['median_ms']:8.1f} ms  ×{timing['speedup_vs_fp32'] or 0:.2f} vs fp32")


if __name__ == "__main__":
    main()
