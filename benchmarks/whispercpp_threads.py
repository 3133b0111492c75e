"""Does whisper.cpp's transcript depend on its thread count? (why its accuracy pass runs on `timing.threads`)

ggml splits a matrix product's sums across threads, so the float additions happen in another order with
another thread count. For each whisper.cpp artifact this transcribes the same clips with each `--threads`
value (the study's own transcriber: greedy, no timestamps, one segment) and counts the clips whose
transcripts differ from the first thread count's. Accuracy only: nothing is timed.

    python benchmarks/whispercpp_threads.py --artifacts data/artifacts/tiny.en/whispercpp/q4_0 \
        --manifest data/manifests/librispeech-test-other.jsonl --clips 20 --threads 1 2 \
        --out benchmarks/results/whispercpp-threads-DATE
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is a folder of scripts, not a package
from clips import manifest_clips, write_record  # noqa: E402  (after the path it is found on)


def transcripts(artifact: Path, clips: list, threads: int) -> list[str]:
    from whisperbench.backends import whispercpp
    from whisperbench.backends.base import Decoding

    transcriber = whispercpp.load(artifact, artifact.name, whispercpp.Options(), Decoding(), threads)
    return [transcriber.transcribe(clip).text for clip in clips]


def compare(artifact: Path, clips: list, ids: list[str], thread_counts: list[int]) -> dict:
    texts = {threads: transcripts(artifact, clips, threads) for threads in thread_counts}
    first = thread_counts[0]
    differ = {
        threads: [
            {"id": ids[index], str(first): texts[first][index], str(threads): text}
            for index, text in enumerate(texts[threads])
            if text != texts[first][index]
        ]
        for threads in thread_counts[1:]
    }
    return {"artifact": str(artifact), "clips": len(clips), "differing": differ}


def _markdown(results: list[dict], thread_counts: list[int]) -> str:
    first = thread_counts[0]
    lines = [f"| artifact | threads | clips whose transcript differs from {first} thread(s) |", "|---|---:|---:|"]
    for result in results:
        name = "/".join(Path(result["artifact"]).parts[-3:])
        for threads, rows in result["differing"].items():
            lines.append(f"| {name} | {threads} | {len(rows)} of {result['clips']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, nargs="+", required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows, clips = manifest_clips(args.manifest, args.clips)
    results = [compare(path, clips, [row["id"] for row in rows], args.threads) for path in args.artifacts]
    write_record(args.out, {"threads": args.threads, "results": results}, _markdown(results, args.threads))


if __name__ == "__main__":
    main()
