"""What can be checked of a Core ML export without macOS, and the Linux stand-in for running it.

* The programs' weights, read back, equal the PyTorch weights (max abs difference 0 at fp32).
* The traced decoder step, run in PyTorch by the same host loop (`graphs.greedy`) that drives Core ML on
  macOS, transcribes the check clips as transformers' `generate` does.
* Off macOS a cell decodes with its packages' exact weights in the PyTorch model (`pytorch_transcriber`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from whisperbench.backends import greedy
from whisperbench.backends.base import BuildContext, Decoding
from whisperbench.backends.coreml import graphs, weights


def cache_shape(config) -> tuple[int, int, int, int]:
    heads = config.decoder_attention_heads
    return config.decoder_layers, heads, config.max_target_positions, config.d_model // heads


class TorchPrograms:
    """The two traced wrappers run in PyTorch, behind the interface `graphs.greedy` drives."""

    def __init__(self, model):
        self.encoder, self.decoder = graphs.wrappers(model)
        self.layers = model.config.decoder_layers

    def encode(self, features: np.ndarray) -> dict:
        import torch

        with torch.no_grad():
            outputs = self.encoder(torch.from_numpy(features))
        names = [f"cross_{kind}_{i}" for i in range(self.layers) for kind in ("key", "value")]
        return {name: value.numpy() for name, value in zip(names, outputs[1:], strict=True)}

    def step(self, inputs: dict):
        import torch

        with torch.no_grad():
            return [value.numpy() for value in self.decoder(*(torch.from_numpy(v) for v in inputs.values()))]


def _weights_check(model, export_dir: Path) -> dict:
    from whisperbench.errors import UserError

    names = json.loads((export_dir / "weight_names.json").read_text())
    tensors, _ = weights.state_dict([export_dir / package for package in graphs.PACKAGES], names)
    reference = {name: parameter.detach().numpy() for name, parameter in model.named_parameters()}
    shapes = [name for name, value in tensors.items() if value.shape != reference[name].shape]
    max_diff = max(float(np.abs(tensors[n] - reference[n]).max()) for n in tensors if n not in shapes)
    if shapes or max_diff != 0.0:
        raise UserError(
            f"Core ML export {export_dir}: weights differ from PyTorch (max abs diff {max_diff:.2e}, "
            f"shape mismatches: {shapes[:3]})"
        )
    return {"weights_compared": len(tensors), "weights_max_abs_diff": max_diff}


def export_check(model, hf_dir: Path, export_dir: Path, rows: list[dict], context: BuildContext) -> dict:
    """Weights read back vs PyTorch; decoder-step transcripts vs transformers on `rows` (at the references'
    lengths for random weights, which never end by themselves)."""
    from transformers import WhisperProcessor

    from whisperbench.backends import pytorch
    from whisperbench.backends.coreml import MIN_IDENTICAL
    from whisperbench.data import audio as audio_io
    from whisperbench.errors import UserError

    check = _weights_check(model, export_dir)
    processor = WhisperProcessor.from_pretrained(export_dir)
    reference = pytorch.PyTorchTranscriber(model, processor, "fp32", context.decoding)
    programs, rules = TorchPrograms(model), greedy.Rules.of(model.generation_config, context.decoding)
    from whisperbench.models.random_weights import check_lengths

    mismatches = []
    for row, length in zip(rows, check_lengths(hf_dir, rows, context.decoding.max_new_tokens), strict=True):
        samples = audio_io.load(row["audio_path"])
        features = greedy.features(processor, samples)
        tokens, _ = graphs.greedy(programs, programs.encode(features), cache_shape(model.config), rules.forced(length))
        text, expected = (
            processor.tokenizer.decode(tokens, skip_special_tokens=True),
            reference.transcribe(samples, length).text,
        )
        if text != expected:
            mismatches.append({"id": row["id"], "transformers": expected, "decoder_step": text})
    identical = (len(rows) - len(mismatches)) / len(rows) if rows else None
    if identical is not None and identical < MIN_IDENTICAL:
        raise UserError(
            f"Core ML decoder step of {export_dir} transcribes differently from transformers: {mismatches[0]}"
        )
    return check | {
        "utterances": len(rows),
        "identical_transcripts": len(rows) - len(mismatches),
        "mismatches": mismatches,
    }


def pytorch_transcriber(artifact_dir: Path, decoding: Decoding, threads: int):
    """The PyTorch model holding the packages' exact (decompressed) weights, decoding as the PyTorch backend."""
    import torch
    import transformers
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    from whisperbench.backends import pytorch
    from whisperbench.backends.coreml import NUMERICS_OFF_MACOS

    transformers.logging.set_verbosity_error()  # generate() warns on every call about max_length
    torch.set_num_threads(threads)
    names = json.loads((artifact_dir / "weight_names.json").read_text())
    tensors, _ = weights.state_dict([artifact_dir / package for package in graphs.PACKAGES], names)
    with torch.device("meta"):  # a skeleton: the read-back weights are assigned into it
        model = WhisperForConditionalGeneration(WhisperConfig.from_pretrained(artifact_dir)).eval()
    state = {name: torch.from_numpy(value) for name, value in tensors.items()}
    missing = set(model.load_state_dict(state, strict=False, assign=True).missing_keys) - {"proj_out.weight"}
    if missing:
        raise ValueError(f"{artifact_dir}: the Core ML programs lack {sorted(missing)[:3]}")
    model.tie_weights()
    model.generation_config = GenerationConfig.from_pretrained(artifact_dir)
    transcriber = pytorch.PyTorchTranscriber(model, WhisperProcessor.from_pretrained(artifact_dir), "fp32", decoding)
    transcriber.runtime = {"numerics": NUMERICS_OFF_MACOS}
    return transcriber
