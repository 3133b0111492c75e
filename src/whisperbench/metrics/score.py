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
        # token-weighted: total time of all steps after the first / number of those steps
        "decoder_ms_per_token": sum(row["decode_ms"] for row in rows) / decode_steps if decode_steps else None,
    }


def failed(run: dict) -> dict:
    """A cell whose artifact could not be built: kept in the table with the reason, no numbers."""
    return {
        **run["cell"],
        "synthetic": run.get("synthetic", False),
        "status": f"failed: {run['reason']}",
        "n_utterances": 0,
        "wer": None,
        "size_mb": None,
        "library": run["artifact"].get("library"),
        "n_parameters": run["weights"].get("n_parameters"),
        "threads": run["threads"],
        "repeats": run["repeats"],
        "warmup": run["warmup"],
    }


def score(rows: list[dict], run: dict) -> dict:
    if run.get("status") == "failed":
        return failed(run)
    cell, artifact = run["cell"], run["artifact"]
    return {
        **cell,
        "synthetic": run.get("synthetic", False),
        "status": "ok",
        "n_utterances": len(rows),
        **word_errors(rows),
        **speed(rows),
        "peak_rss_mb": run["peak_rss_mb"],
        "size_mb": artifact["size_bytes"] / 1e6,
        "library": artifact.get("library"),
        "n_parameters": run["weights"].get("n_parameters"),
        "threads": run["threads"],
        "repeats": run["repeats"],
        "warmup": run["warmup"],
        "unstable_texts": sum(not row["all_runs_same_text"] for row in rows),
    }
