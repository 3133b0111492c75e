"""Score one cell from its raw rows: WER after Whisper's English normalizer, speed, memory, size."""

from __future__ import annotations

import statistics


def normalizer():
    """Whisper's English normalizer (spelling, numbers, punctuation), from the whisper-normalizer package."""
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def word_errors(rows: list[dict]) -> dict:
    import jiwer

    normalize = normalizer()
    references = [normalize(row["reference"]) for row in rows]
    hypotheses = [normalize(row["hypothesis"]) for row in rows]
    # jiwer rejects empty references; an utterance whose normalized reference is empty has no words to score.
    pairs = [(ref, hyp) for ref, hyp in zip(references, hypotheses, strict=False) if ref.strip()]
    if not pairs:
        return {"wer": None, "reference_words": 0}
    measures = jiwer.process_words([ref for ref, _ in pairs], [hyp for _, hyp in pairs])
    reference_words = measures.hits + measures.substitutions + measures.deletions
    return {
        "wer": measures.wer,
        "substitutions": measures.substitutions,
        "deletions": measures.deletions,
        "insertions": measures.insertions,
        "reference_words": reference_words,
    }


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def speed(rows: list[dict]) -> dict:
    audio_s = sum(row["audio_s"] for row in rows)
    compute_s = sum(row["total_ms"] for row in rows) / 1e3
    decode_steps = sum(max(row["n_tokens"] - 1, 0) for row in rows)
    rtf = compute_s / audio_s if audio_s else None
    return {
        "audio_s": audio_s,
        "compute_s": compute_s,
        "rtf": rtf,
        "rtfx": 1 / rtf if rtf else None,
        "features_ms": _median(row["features_ms"] for row in rows),
        "encoder_ms": _median(row["encoder_ms"] for row in rows),
        "first_token_ms": _median(row["first_token_ms"] for row in rows),
        # the latency breakdown: what the first decoder step adds, and all steps after it (per-utterance medians)
        "first_step_ms": _median(row["first_token_ms"] - row["features_ms"] - row["encoder_ms"] for row in rows),
        "decode_ms": _median(row["decode_ms"] for row in rows),
        # token-weighted: total time of all steps after the first / number of those steps
        "decoder_ms_per_token": sum(row["decode_ms"] for row in rows) / decode_steps if decode_steps else None,
    }


NOISY_CV = 0.05  # repeats of one utterance vary more than this: the cell's timing is noisy
CONTENDED_CORES = 0.25  # other processes used more than this many cores while the cell was timed


CROSS_KV_ELSEWHERE = "encoder ms without the cross-attention K/V (its API computes them in the first decoder step)"


def timing_spread(rows: list[dict], timing: dict, backend: str | None = None) -> dict:
    """How far to trust a cell's times: the median over utterances of their repeats' coefficient of
    variation, the interquartile range of the cell's RTFx over repeats, how busy the machine was, and
    whether its encoder ms stops at another cut point than every other backend's."""
    import numpy as np

    from whisperbench.backends import registry

    runs = [row["total_ms_runs"] for row in rows if len(row.get("total_ms_runs", [])) > 1]
    cv = _median(float(np.std(r) / np.mean(r)) for r in runs) if runs else None
    iqr = None
    if runs and len({len(r) for r in runs}) == 1:
        audio_s = sum(row["audio_s"] for row in rows if len(row.get("total_ms_runs", [])) > 1)
        per_repeat = [audio_s / (sum(r[k] for r in runs) / 1e3) for k in range(len(runs[0]))]
        iqr = float(np.subtract(*np.percentile(per_repeat, [75, 25])))
    others = timing.get("other_load_cores")
    flags = []
    if cv is not None and cv > NOISY_CV:
        flags.append(f"noisy (repeats vary {100 * cv:.0f} %)")
    if others is not None and others > CONTENDED_CORES:
        flags.append(f"contended (other processes used {others:.2f} cores)")
    spec = registry.BACKENDS.get(backend)
    if rows and spec and spec.encoder_excludes_cross_kv:
        flags.append(CROSS_KV_ELSEWHERE)
    return {"timing_cv": cv, "rtfx_iqr": iqr, "other_load_cores": others, "timing_flags": "; ".join(flags) or None}


MIN_AGREEMENT = 0.99  # share of timed utterances whose single-utterance transcript must equal the batched one


def agreement(hypotheses: list[dict], timings: list[dict]) -> dict:
    """Do the timing pass's transcripts (batch 1) equal the accuracy pass's (batched) on the same utterances?"""
    batched = {row["id"]: row["hypothesis"] for row in hypotheses if "skipped" not in row}
    compared = [row for row in timings if "skipped" not in row and row["id"] in batched]
    differing = [row["id"] for row in compared if row["hypothesis"] != batched[row["id"]]]
    fraction = (len(compared) - len(differing)) / len(compared) if compared else None
    return {"agreement": fraction, "n_compared": len(compared), "differing_ids": differing}


def _status(agreed: dict, accuracy: dict, timing: dict) -> str:
    unmeasured = [f"WER: {accuracy['wer_unavailable']}"] if accuracy.get("wer_unavailable") else []
    if timing.get("speed_unavailable"):
        unmeasured.append(f"speed, memory: {timing['speed_unavailable']}")
    if unmeasured:
        return "; ".join(["ok", *unmeasured])
    if agreed["agreement"] is not None and agreed["agreement"] < MIN_AGREEMENT:
        return (
            f"check: batched and single transcripts agree on {100 * agreed['agreement']:.0f} % "
            f"(< {100 * MIN_AGREEMENT:.0f} %) of {agreed['n_compared']} timed utterances"
        )
    return "ok"


def _settings(accuracy: dict, timing: dict) -> dict:
    return {
        "threads": timing.get("threads"),
        "repeats": timing.get("repeats"),
        "warmup": timing.get("warmup"),
        "batch_size": accuracy.get("batch_size"),
        "batch_fallback": accuracy.get("batch_fallback") is not None,
        "library": accuracy["artifact"].get("library"),
        # set where a backend computes with another runtime's numerics (Core ML weights in PyTorch off macOS)
        "numerics": (accuracy.get("runtime") or {}).get("numerics"),
        "n_parameters": accuracy["weights"].get("n_parameters"),
        "synthetic": accuracy.get("synthetic", False),
        "weights": "random" if accuracy["weights"].get("random_weights") else None,
        # fp16-stored weights (the hub's large-v3) make every float cell's "fp32" an fp32 compute of fp16 values
        "stored_dtypes": ",".join(accuracy["weights"].get("stored_dtypes") or []) or None,
    }


def _bits(accuracy: dict) -> dict:
    """Bits per weight as stored (weight bytes x 8 / parameters) and, for a mixed recipe, its nominal bits
    (mixed/budget.py) and how many groups it gave the high width."""
    weights, parameters = accuracy["artifact"].get("weights_bytes"), accuracy["weights"].get("n_parameters")
    mix = accuracy["artifact"].get("mix") or {}
    return {
        "bits_per_weight": weights * 8 / parameters if weights and parameters else None,
        "mix_bits_per_weight": mix.get("bits_per_weight"),
        "mix_high_groups": len(mix["high_bit_groups"]) if mix else None,
    }


def _asked(accuracy: dict, timing: dict) -> dict:
    """What params asked for beside what the cell got, so that a set that shrank shows in the summary."""
    artifact = accuracy["artifact"]
    return {
        # random weights evaluate nothing on purpose: no shrunken set to report
        "n_asked": None if accuracy.get("wer_unavailable") else accuracy.get("n_asked"),
        # a backend this machine cannot time timed nothing on purpose: no shrunken set to report
        "n_timed_asked": None if timing.get("speed_unavailable") else timing.get("n_asked"),
        "n_calibration": len(artifact["calibration_ids"]) if "calibration_ids" in artifact else None,
        "n_calibration_asked": artifact.get("calibration_asked"),
    }


def _mb(n_bytes: int | None) -> float | None:
    return n_bytes / 1e6 if n_bytes is not None else None


def failed(accuracy: dict, timing: dict) -> dict:
    """A cell whose artifact could not be built, or whose backend raised in a pass: kept in the table
    with the reason, no numbers."""
    reason = accuracy.get("reason") if accuracy.get("status") == "failed" else timing["reason"]
    return {
        **accuracy["cell"],
        **_settings(accuracy, timing),
        "status": f"failed: {reason}",
        "n_utterances": 0,
        "wer": None,
        "size_mb": None,
    }


def score(hypotheses: list[dict], accuracy: dict, timings: list[dict], timing: dict) -> dict:
    """WER from the accuracy pass; speed and memory from the timing pass; how well the two passes agree."""
    if "failed" in (accuracy.get("status"), timing.get("status")):
        return failed(accuracy, timing)
    evaluated = [row for row in hypotheses if "skipped" not in row]
    timed = [row for row in timings if "skipped" not in row]
    agreed = agreement(hypotheses, timings)
    throughput = timing.get("throughput") or {}
    return {
        **accuracy["cell"],
        **_settings(accuracy, timing),
        "status": _status(agreed, accuracy, timing),
        "n_utterances": len(evaluated),
        "n_subset": len(hypotheses),
        **_asked(accuracy, timing),
        "n_left_out": len(hypotheses) - len(evaluated),
        **word_errors(evaluated),
        "n_timed": len(timed),
        **speed(timed),
        **timing_spread(timed, timing, accuracy["cell"]["backend"]),
        **agreed,
        "rtfx_batched": throughput.get("rtfx"),
        "peak_rss_mb": timing.get("peak_rss_mb"),
        "peak_rss_loading_mb": timing.get("peak_rss_loading_mb"),
        "baseline_rss_mb": timing.get("baseline_rss_mb"),
        "size_mb": accuracy["artifact"]["size_bytes"] / 1e6,
        "weights_mb": _mb(accuracy["artifact"].get("weights_bytes")),
        **_bits(accuracy),
        "unstable_texts": sum(not row["all_runs_same_text"] for row in timed),
    }
