"""ONNX Runtime as its users tune Whisper: the transformer optimizer's fusions, and IO binding for the KV cache.

For each artifact (a built ONNX Runtime precision folder) and real clips, times at batch 1 with the study's
thread settings:

* **optimizer**: `onnxruntime.transformers.optimizer.optimize_model(model_type="bart")` (the fusions ONNX
  Runtime's own Whisper export applies) on both graphs, against the graphs as built; which operators it
  fused, the encoder ms and decoder ms/step of each, and whether the outputs stay equal (max abs difference
  of the encoder outputs and of the logits, greedy tokens identical);
* **IO binding**: the same greedy loop with the KV cache kept in OrtValues between steps
  (`run_with_iobinding`, the encoder's K/V bound once) against numpy feeds (`session.run`);
* **batched encoder**: the encoder's ms per utterance at batch 1 and in a batch of `--batch` (why the
  accuracy pass encodes one utterance at a time and batches only the decoder steps).

Each variant: `--warmup` untimed clips, then the median of `--repeats` runs per clip, variants interleaved.

    python benchmarks/onnx_session.py --artifacts data/artifacts/tiny.en/onnxruntime/fp32 ... \
        --manifest data/manifests/librispeech-test-other.jsonl --clips 4 --out benchmarks/results/onnx-session-<date>
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is a folder of scripts, not a package
from clips import manifest_clips, write_record  # noqa: E402  (after the path it is found on)


def _optimized(artifact: Path, scratch: Path) -> tuple[Path, dict]:
    """A copy of the artifact with both graphs through the transformer optimizer; its fused operator counts."""
    import shutil

    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import WhisperConfig

    config = WhisperConfig.from_pretrained(artifact)
    target = scratch / artifact.name
    shutil.copytree(artifact, target)
    fused = {}
    for name in ("encoder.onnx", "decoder.onnx"):
        model = optimize_model(
            str(artifact / name),
            model_type="bart",
            num_heads=config.encoder_attention_heads,
            hidden_size=config.d_model,
            opt_level=0,  # the Python fusions only; the session applies its own at load, as for the original
        )
        fused[name] = {op: count for op, count in model.get_fused_operator_statistics().items() if count}
        model.save_model_to_file(str(target / name))
    return target, fused


def _decode(transcriber, features: np.ndarray, binding: bool) -> tuple[list[int], float, float, np.ndarray]:
    """Greedy tokens, encoder ms, decoder ms per step, first-step logits."""
    start = time.perf_counter()
    encoded = transcriber.encoder.run(transcriber.encoder_outputs, {"input_features": features})
    encoder_ms = (time.perf_counter() - start) * 1e3
    cross = dict(zip(transcriber.encoder_outputs, encoded, strict=True))
    step = _binding_steps if binding else _numpy_steps
    start = time.perf_counter()
    tokens, first_logits = step(transcriber, cross)
    return tokens, encoder_ms, (time.perf_counter() - start) * 1e3 / len(tokens), first_logits


def _next(transcriber, logits: np.ndarray, first: bool) -> int:
    return int(transcriber.rules.pick(logits[:, -1], first=first)[0])


def _numpy_steps(transcriber, cross: dict) -> tuple[list[int], np.ndarray]:
    shapes = transcriber.past_shapes
    past = {name: np.zeros((1, heads, 0, size), np.float32) for name, (heads, size) in shapes.items()}
    tokens, prompt, first_logits = [], list(transcriber.rules.prompt), None
    token = prompt[0]
    for position in range(len(prompt) - 1 + transcriber.rules.max_new_tokens):
        outputs = transcriber.decoder.run(None, {"input_ids": np.array([[token]], np.int64), **past, **cross})
        past = dict(zip(transcriber.past_names, outputs[1:], strict=True))
        if position + 1 < len(prompt):
            token = prompt[position + 1]
            continue
        first_logits = outputs[0] if first_logits is None else first_logits
        token = _next(transcriber, outputs[0], first=not tokens)
        tokens.append(token)
        if token == transcriber.rules.eos:
            break
    return tokens, first_logits


def _binding_steps(transcriber, cross: dict) -> tuple[list[int], np.ndarray]:
    from onnxruntime import OrtValue

    binding = transcriber.decoder.io_binding()
    for name, value in cross.items():  # bound once per utterance
        binding.bind_ortvalue_input(name, OrtValue.ortvalue_from_numpy(value))
    shapes = transcriber.past_shapes
    past = {name: OrtValue.ortvalue_from_numpy(np.zeros((1, h, 0, s), np.float32)) for name, (h, s) in shapes.items()}
    outputs = [output.name for output in transcriber.decoder.get_outputs()]
    tokens, prompt, first_logits = [], list(transcriber.rules.prompt), None
    token = prompt[0]
    for position in range(len(prompt) - 1 + transcriber.rules.max_new_tokens):
        binding.bind_cpu_input("input_ids", np.array([[token]], np.int64))
        for name, value in past.items():
            binding.bind_ortvalue_input(name, value)
        for name in outputs:
            binding.bind_output(name, "cpu")
        transcriber.decoder.run_with_iobinding(binding)
        values = binding.get_outputs()
        past = dict(zip(transcriber.past_names, values[1:], strict=True))
        if position + 1 < len(prompt):
            token = prompt[position + 1]
            continue
        logits = values[0].numpy()
        first_logits = logits if first_logits is None else first_logits
        token = _next(transcriber, logits, first=not tokens)
        tokens.append(token)
        if token == transcriber.rules.eos:
            break
    return tokens, first_logits


def _time_variant(transcriber, clips: list, binding: bool, warmup: int, repeats: int) -> dict:
    features = [transcriber.features(clip) for clip in clips]
    for clip_features in features[:warmup]:
        _decode(transcriber, clip_features, binding)
    per_clip = []
    for clip_features in features:
        runs = [_decode(transcriber, clip_features, binding) for _ in range(repeats)]
        per_clip.append(
            {
                "tokens": runs[0][0],
                "encoder_ms": statistics.median(run[1] for run in runs),
                "step_ms": statistics.median(run[2] for run in runs),
                "first_logits": runs[0][3],
            }
        )
    return {
        "encoder_ms": statistics.median(clip["encoder_ms"] for clip in per_clip),
        "step_ms": statistics.median(clip["step_ms"] for clip in per_clip),
        "clips": per_clip,
    }


def _compare(base: dict, other: dict) -> dict:
    return {
        "tokens_identical": all(a["tokens"] == b["tokens"] for a, b in zip(base["clips"], other["clips"], strict=True)),
        "first_logits_max_abs_diff": max(
            float(np.abs(a["first_logits"] - b["first_logits"]).max())
            for a, b in zip(base["clips"], other["clips"], strict=True)
        ),
    }


def _encoder_per_utterance(transcriber, clips: list, batch: int, repeats: int) -> dict:
    """Median encoder ms per utterance at batch 1 and at `batch` (the clips repeated to fill it)."""
    features = np.concatenate([transcriber.features(clip) for clip in clips])
    batched = np.concatenate([features] * -(-batch // len(features)))[:batch]

    def per_utterance(inputs: np.ndarray) -> float:
        runs = []
        for _ in range(repeats + 1):  # the first run is a warm-up
            start = time.perf_counter()
            transcriber.encoder.run(transcriber.encoder_outputs, {"input_features": inputs})
            runs.append((time.perf_counter() - start) * 1e3 / len(inputs))
        return round(statistics.median(runs[1:]), 1)

    return {
        "batch": batch,
        "ms_per_utterance_batch_1": per_utterance(batched[:1]),
        "ms_per_utterance_batched": per_utterance(batched),
    }


def measure(artifact: Path, clips: list, threads: int, warmup: int, repeats: int, batch: int) -> dict:
    from whisperbench.backends.base import Decoding
    from whisperbench.backends.onnxruntime import Options, runtime

    precision = artifact.name
    with tempfile.TemporaryDirectory(prefix="whisperbench-ort-") as scratch:
        optimized, fused = _optimized(artifact, Path(scratch))
        variants = {
            "as built": (runtime.load(artifact, precision, Options(), Decoding(), threads), False),
            "IO binding": (runtime.load(artifact, precision, Options(), Decoding(), threads), True),
            "optimizer": (runtime.load(optimized, precision, Options(), Decoding(), threads), False),
        }
        timed = {name: _time_variant(t, clips, binding, warmup, repeats) for name, (t, binding) in variants.items()}
        encoder_batch = _encoder_per_utterance(variants["as built"][0], clips, batch, repeats)
    base = timed["as built"]
    return {
        "artifact": str(artifact),
        "optimizer_fused": fused,
        "batched_encoder": encoder_batch,
        "variants": {
            name: {
                "encoder_ms": round(result["encoder_ms"], 2),
                "decoder_ms_per_step": round(result["step_ms"], 3),
                **({} if name == "as built" else _compare(base, result)),
            }
            for name, result in timed.items()
        },
    }


def _markdown(results: list[dict]) -> str:
    lines = [
        "| artifact | variant | encoder ms | decoder ms/step | tokens identical | logits max abs diff |",
        "|---|---|---:|---:|---|---:|",
    ]
    for result in results:
        name = "/".join(Path(result["artifact"]).parts[-3:])
        for variant, row in result["variants"].items():
            diff = row.get("first_logits_max_abs_diff")
            lines.append(
                f"| {name} | {variant} | {row['encoder_ms']:.1f} | {row['decoder_ms_per_step']:.2f} | "
                f"{row.get('tokens_identical', '')} | {'' if diff is None else f'{diff:.2e}'} |"
            )
    lines += ["", "| artifact | encoder ms per utterance, batch 1 | in a batch of B | B |", "|---|---:|---:|---:|"]
    for result in results:
        name, encoder = "/".join(Path(result["artifact"]).parts[-3:]), result["batched_encoder"]
        single, batched = encoder["ms_per_utterance_batch_1"], encoder["ms_per_utterance_batched"]
        lines.append(f"| {name} | {single} | {batched} | {encoder['batch']} |")
    fused = {"/".join(Path(r["artifact"]).parts[-3:]): r["optimizer_fused"] for r in results}
    lines += ["", "Operators the optimizer fused: " + json.dumps(fused)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, nargs="+", required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="batch size of the batched encoder timing")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows, clips = manifest_clips(args.manifest, args.clips)
    results = [measure(path, clips, args.threads, args.warmup, args.repeats, args.batch) for path in args.artifacts]
    record = {"clips": [row["id"] for row in rows], "threads": args.threads, "repeats": args.repeats}
    write_record(args.out, record | {"warmup": args.warmup, "results": results}, _markdown(results))


if __name__ == "__main__":
    main()
