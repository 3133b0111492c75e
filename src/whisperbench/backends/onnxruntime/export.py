"""The one FP32 ONNX export per model, checked against PyTorch FP32 on real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from whisperbench.backends import processor as processor_files
from whisperbench.backends.base import BuildContext
from whisperbench.backends.onnxruntime import (
    CALIBRATION,
    EXPORT_CHECK,
    MIN_IDENTICAL,
    Options,
    graphs,
    mixed,
)


def export(hf_dir: Path, options: Options, context: BuildContext, check_rows: list[dict], output_dir: Path) -> dict:
    """Export the FP32 graphs, check them against PyTorch on `check_rows`, keep the rows for calibration."""
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.set_num_threads(context.threads)
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="sdpa")
    graphs.export(model.eval(), output_dir, options.opset)
    mixed.write_weights_map(model, output_dir, graphs.GRAPHS)
    del model  # the check loads the reference through the PyTorch backend, with its decoding rules
    processor_files.copy(hf_dir, output_dir)
    (output_dir / CALIBRATION).write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in check_rows))
    check = export_check(hf_dir, output_dir, check_rows[: options.export_check_utterances], context)
    (output_dir / EXPORT_CHECK).write_text(json.dumps(check, indent=2) + "\n")
    return check


def export_check(hf_dir: Path, export_dir: Path, rows: list[dict], context: BuildContext) -> dict:
    """Encoder max-abs difference and greedy transcripts, ONNX FP32 vs PyTorch FP32."""
    import torch

    from whisperbench.backends import pytorch
    from whisperbench.data import audio as audio_io
    from whisperbench.errors import UserError

    reference = pytorch.load(hf_dir, "fp32", pytorch.Options(), context.decoding, context.threads)
    from whisperbench.backends.onnxruntime.runtime import load

    candidate = load(export_dir, "fp32", Options(), context.decoding, context.threads)
    max_diff, mismatches = 0.0, []
    from whisperbench.models.random_weights import check_lengths

    for row, length in zip(rows, check_lengths(hf_dir, rows, context.decoding.max_new_tokens), strict=True):
        samples = audio_io.load(row["audio_path"])
        features = candidate.features(samples)
        with torch.no_grad():
            expected = reference.model.get_encoder()(torch.from_numpy(features)).last_hidden_state.numpy()
        actual = candidate.encoder.run(["encoder_hidden_states"], {"input_features": features})[0]
        max_diff = max(max_diff, float(np.abs(expected - actual).max()))
        torch_text = reference.transcribe(samples, length).text
        onnx_text = candidate.transcribe(samples, length).text
        if torch_text != onnx_text:
            mismatches.append({"id": row["id"], "pytorch": torch_text, "onnxruntime": onnx_text})
    identical = (len(rows) - len(mismatches)) / len(rows) if rows else None
    check = {
        "utterances": len(rows),
        "identical_transcripts": len(rows) - len(mismatches),
        "identical_fraction": identical,
        "required_fraction": MIN_IDENTICAL,
        "encoder_max_abs_diff": max_diff,
        "mismatches": mismatches,
    }
    if identical is not None and identical < MIN_IDENTICAL:
        raise UserError(
            f"ONNX export of {hf_dir} differs from PyTorch FP32: {len(mismatches)}/{len(rows)} transcripts differ "
            f"(encoder max abs diff {max_diff:.2e}); first: {mismatches[0]}"
        )
    return check
