"""whisper.cpp, a peer runtime (the usual edge choice): our own HF → ggml writer, gguf's block quantizers,
and the pywhispercpp binding to run it: by default compiled for this CPU from its source distribution
(`native`, every instruction set the CPU has), or its binary wheel (the generic SSE3 … AVX2 build).

`prepare` writes whisper.cpp's own model file (`ggml`); `load` runs it (`runtime`). whisper.cpp's
arithmetic depends on its thread count, so both passes run on `timing.threads` (registry).

Decoding: greedy (best_of 1, no temperature fallback), `<|notimestamps|>`, one segment, no context,
blank and non-speech tokens suppressed (HF's `suppress_tokens` are the non-speech tokens), at most
`max_new_tokens`. Timing comes from whisper.cpp's own timers (`whisper_print_timings`, reset before each
utterance): mel = features, encode = the encoder *with* the cross-attention K/V (whisper.cpp computes them
in its encode step: the shared cut point), first token = mel + encode + the prompt pass, decoder =
the single-token and batched decode passes after it plus sampling; total = wall time of `whisper_full`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from whisperbench.backends import processor as processor_files
from whisperbench.backends.base import BackendOptions, BuildContext, greedy_without_timestamps
from whisperbench.backends.whispercpp.ggml import (
    MAGIC,
    MODEL_FILE,
    ggml_name,
    stored_tensors,
    untied_problem,
    write_ggml,
)
from whisperbench.backends.whispercpp.runtime import load

PRECISIONS = ("f16", "q8_0", "q5_0", "q4_0")
# ggml's file stores a type per tensor, but whisper.cpp's loader (whisper_model_load, pywhispercpp 1.5.1) creates
# every 2-D weight with the header's one type and stops on a tensor whose bytes differ ("has wrong size in model
# file"), so a file cannot mix q4_0 and q8_0 weights.
_NO_MIX = (
    "whisper.cpp cannot load mixed types: its loader gives every 2-D weight the file header's one type and "
    "refuses a tensor stored in another ('tensor has wrong size in model file')"
)
UNMIXABLE = {"q4_mixed": _NO_MIX, "q4_fixedmix": _NO_MIX, "int4_mixed": _NO_MIX, "int4_fixedmix": _NO_MIX}
# The libraries this backend's results depend on: recorded, with their versions, in every cell's run record.
LIBRARIES = ("pywhispercpp", "gguf")
MAX_AUDIO_S = 30.0


# Peak memory of each build step (precision, or the export): (MB, bytes per parameter), the least-squares line
# over tiny, base, small, medium, large-v3-turbo, large-v3 and distil-large-v3 with random weights (where each ran:
# benchmarks/scaling.py, benchmarks/results/scaling-2026-12-03).
# A step that would need more than the machine has available is refused before it starts (artifacts.py).
BUILD_MEMORY = {
    "f16": (655, 1.86),
    "q4_0": (674, 1.85),
    "q5_0": (679, 1.84),
    "q8_0": (680, 1.84),
}

# Size on disk of each precision's artifact: (MB, bytes per parameter), the least-squares line over the same
# cells; a build is refused before it starts where the disk has less free (artifacts.py).
BUILD_DISK = {
    "f16": (3, 2.00),
    "q4_0": (6, 0.57),
    "q5_0": (6, 0.70),
    "q8_0": (5, 1.07),
}


BUILDS = ("native", "wheel")


@dataclass(frozen=True)
class Options(BackendOptions):
    build: str = "native"  # native: compiled for this CPU (native.py); wheel: pywhispercpp's generic binary wheel
    flash_attn: bool = True  # whisper.cpp's own default (whisper_context_default_params)

    def __post_init__(self):
        if self.build not in BUILDS:
            raise ValueError(f"build: {self.build!r} is not allowed; allowed: {', '.join(BUILDS)}")
        if not isinstance(self.flash_attn, bool):
            raise ValueError(f"flash_attn: {self.flash_attn!r} is not allowed; allowed: true, false")


def environment_problem(options: Options) -> str | None:
    """Whether the chosen build exists and suits this CPU (files only, no import)."""
    from whisperbench.backends.whispercpp import native

    return native.build_problem(options.build)


def unsupported_reason(precision: str) -> str | None:
    return None


def decoding_problem(decoding: dict) -> str | None:
    return greedy_without_timestamps("whispercpp", decoding)


# whisper.cpp derives its special tokens and language count from the vocabulary's size (51864 English-only,
# 51865 multilingual, 51866 large-v3's): another size would read the wrong token ids.
VOCABULARY_SIZES = (51864, 51865, 51866)


def model_problem(config: dict) -> str | None:
    """Why whisper.cpp cannot run a model of this config.json (None: it can); checked at params validation."""
    if config.get("vocab_size") not in VOCABULARY_SIZES:
        return (
            f"its vocabulary has {config.get('vocab_size')} tokens; whisper.cpp finds its special tokens by the "
            f"vocabulary's size and knows {', '.join(map(str, VOCABULARY_SIZES))}"
        )
    return untied_problem(config)


def prepare(hf_dir: Path, precision: str, options: Options, output_dir: Path, context: BuildContext) -> dict:
    from importlib.metadata import version

    hf_dir = Path(hf_dir)
    counts = write_ggml(hf_dir, precision, Path(output_dir) / MODEL_FILE)
    processor_files.copy(hf_dir, output_dir)  # the prompt and special tokens at load time
    return {
        "library": f"pywhispercpp {version('pywhispercpp')} (gguf {version('gguf')} quantizers)",
        "recipe": f"HF → ggml ({precision} 2-D weights; convolutions f16; embeddings, biases, norms f32)",
        "tensors_by_type": counts,
    }


__all__ = ["MAGIC", "MAX_AUDIO_S", "MODEL_FILE", "PRECISIONS", "Options", "decoding_problem", "ggml_name"]
__all__ += ["load", "prepare", "stored_tensors", "unsupported_reason"]
