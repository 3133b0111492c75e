"""Core ML backend: one ML Program export per model, then fp32, fp16, int8, int4, pal4 and pal6 packages.

`export` traces the encoder (with the cross-attention K/V, the shared cut point) and a one-token decoder
step over an explicit fixed-size KV cache (`graphs`), converts both to `.mlpackage` with coremltools and
checks that the programs hold exactly the PyTorch weights and that the decoder step, run in PyTorch,
transcribes as transformers does. `prepare` makes one precision with `coremltools.optimize.coreml`:

* fp32: the export; fp16: converted again at fp16 compute precision (weights stored in fp16);
* int8: `linear_quantize_weights`, symmetric, per channel; int4: the same per block of
  `int4_block_size` (needs an iOS 18 / macOS 15 target); pal4 / pal6: `palettize_weights`, k-means
  look-up tables of 16 / 64 entries, one per group of 8 channels by default (`palettization_granularity`,
  `palettization_group_size`; one table per tensor broke pal4 on tiny.en and base). Compressed recipes
  start from the fp16 program, as Apple's tools do; weights a recipe cannot express stay float and are
  listed;
* int4_mixed / int4_fixedmix: int4 with the mix's groups (mixed/plan.py) at int8 per channel;
  pal4_mixed / pal4_fixedmix: pal4 with the mix's groups in 8-bit palettes (Apple's mixed-bit
  palettization, per op).
  The mixes keep the convolutions fp16, as the other backends' mixes keep them float.

Running a package needs macOS (`predict`). There, `load` runs the programs with `compute_units`. Elsewhere
it reads every weight back exactly as the device would decompress it (`weights`), puts them into the
PyTorch model and decodes with the PyTorch backend: these cells' WER is that of the Core ML weights
with PyTorch numerics, and their speed and memory are not measured (`speed_unavailable`).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from whisperbench.backends import processor as processor_files
from whisperbench.backends.base import BackendOptions, BuildContext, Decoding, greedy_without_timestamps
from whisperbench.mixed.plan import check_budget

PRECISIONS = ("fp32", "fp16", "int8", "int4", "pal4", "pal6")
# Mixed precisions (recipes.py): by the sensitivity pass's damage per weight, or in the fixed order.
MIXED = {"int4_mixed": "sensitivity", "int4_fixedmix": "fixed", "pal4_mixed": "sensitivity", "pal4_fixedmix": "fixed"}
PRECISIONS += tuple(MIXED)
# The uniform 4-bit recipe each mix starts from.
MIX_BASE = {"int4_mixed": "int4", "int4_fixedmix": "int4", "pal4_mixed": "pal4", "pal4_fixedmix": "pal4"}
# The libraries this backend's results depend on: recorded, with their versions, in every cell's run record.
LIBRARIES = ("coremltools", "scikit-learn")
MAX_AUDIO_S = 30.0  # one 30 s window per utterance: no long-form decoding
# The options the export reads: changing any other (a recipe's, the budget's) rebuilds only the precisions.
EXPORT_OPTIONS = ("minimum_deployment_target", "export_check_utterances")
COMPUTE_UNITS = {"cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE", "all": "ALL"}
DEPLOYMENT_TARGETS = ("iOS17", "iOS18", "macOS14", "macOS15")
GRANULARITIES = ("per_tensor", "per_grouped_channel")
WEIGHT_NAMES, EXPORT_CHECK, TRACED = "weight_names.json", "export_check.json", ("encoder.pt", "decoder.pt")
NUMERICS_OFF_MACOS = "Core ML weights, PyTorch numerics"
MIN_IDENTICAL = 0.99  # share of check utterances whose decoder-step transcript must equal transformers'


# Peak memory of each build step (precision, or the export): (MB, bytes per parameter), the least-squares line
# over tiny, base, small, medium, large-v3-turbo, large-v3 and distil-large-v3 with random weights (where each ran:
# benchmarks/scaling.py, benchmarks/results/scaling-2026-12-03).
# A step that would need more than the machine has available is refused before it starts (artifacts.py).
BUILD_MEMORY = {
    "export": (1067, 12.13),
    "fp16": (1159, 8.65),
    "fp32": (1292, 6.47),
    "int4": (1267, 8.79),
    "int8": (1278, 8.71),
    "pal4": (1076, 17.59),
    "pal6": (2263, 35.45),
}

# Size on disk of each precision's artifact: (MB, bytes per parameter), the least-squares line over the same
# cells; a build is refused before it starts where the disk has less free (artifacts.py).
BUILD_DISK = {
    "fp16": (4, 2.00),
    "fp32": (4, 4.00),
    "int4": (4, 0.56),
    "int8": (4, 1.00),
    "pal4": (4, 0.51),
    "pal6": (4, 0.77),
}
# The mixes: not fitted. Their builds peaked where their uniform recipe's did (int4_mixed / int4_fixedmix / int4:
# tiny.en 1388 / 1389 / 1388 MB, base int4_fixedmix / int4 1874 / 1874; pal4_mixed / pal4_fixedmix / pal4: tiny.en
# 1734 / 1735 / 1738: issue 22's study, 2026-12-07), so that recipe's memory line; on disk at most every movable
# weight at 8 bits, so int8's line.
BUILD_MEMORY |= {precision: BUILD_MEMORY[MIX_BASE[precision]] for precision in MIXED}
BUILD_DISK |= {precision: BUILD_DISK["int8"] for precision in MIXED}


@dataclass(frozen=True)
class Options(BackendOptions):
    compute_units: str = "all"
    minimum_deployment_target: str = "iOS18"
    int4_block_size: int = 32
    palettization_granularity: str = "per_grouped_channel"
    palettization_group_size: int = 8
    export_check_utterances: int = 4
    mixed_bits_per_weight: float = 5.0  # the mixed precisions' budget (effective bits per weight)

    def __post_init__(self):
        check_budget(self.mixed_bits_per_weight)
        checks = [
            ("compute_units", self.compute_units in COMPUTE_UNITS, ", ".join(COMPUTE_UNITS)),
            (
                "minimum_deployment_target",
                self.minimum_deployment_target in DEPLOYMENT_TARGETS,
                ", ".join(DEPLOYMENT_TARGETS),
            ),
            ("int4_block_size", self.int4_block_size in (16, 32, 64, 128), "16, 32, 64, 128"),
            ("palettization_granularity", self.palettization_granularity in GRANULARITIES, ", ".join(GRANULARITIES)),
            ("palettization_group_size", self.palettization_group_size in (8, 16, 32, 64), "8, 16, 32, 64"),
            ("export_check_utterances", _positive(self.export_check_utterances), "a positive integer"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not allowed; allowed: {allowed}")


def mixed_scheme(options: Options, precision: str):
    """int4_mixed: coremltools' linear_symmetric int4 per block (restricted range, fp16 scales, from the fp16
    program); pal4_mixed: its k-means palettes per group of channels."""
    from whisperbench.mixed.schemes import Palette, Scheme

    if precision.startswith("pal4"):
        return Palette(4, options.palettization_group_size)
    return Scheme(options.int4_block_size, "fp16", "sym4r")


def mixed_widths(options: Options):
    """4 or 8 bits for every linear, embedding and position table; the convolutions, biases and norms fp16."""
    from whisperbench.mixed.budget import Widths
    from whisperbench.mixed.groups import CONV

    return Widths(float_bits=16, fixed={CONV: 16})


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def unsupported_reason(precision: str) -> str | None:
    return None


def decoding_problem(decoding: dict) -> str | None:
    return greedy_without_timestamps("coreml", decoding)


def can_predict() -> bool:
    """Core ML runs models only on macOS, through coremltools' native extension."""
    if sys.platform != "darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError:
        return False
    return True


def speed_unavailable() -> str | None:
    """Why the timing pass cannot measure this backend here (None: it can)."""
    return None if can_predict() else "needs macOS (Core ML runs models only there)"


# ---------------------------------------------------------------- export (once per model)


def export(hf_dir: Path, options: Options, context: BuildContext, check_rows: list[dict], output_dir: Path) -> dict:
    """Convert both programs at fp32, keep the traces (for fp16) and the weight names, check them."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from whisperbench.backends.coreml import graphs, weights

    torch.set_num_threads(context.threads)
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager")
    traced = graphs.trace(model.eval())
    graphs.convert(traced, model.config, output_dir, "float32", options.minimum_deployment_target)
    for name, part in zip(TRACED, ("encoder", "decoder"), strict=True):
        torch.jit.save(traced[part], str(output_dir / name))
    (output_dir / WEIGHT_NAMES).write_text(json.dumps(weights.const_names(model), indent=1) + "\n")
    processor_files.copy(hf_dir, output_dir)
    from whisperbench.backends.coreml.check import export_check

    check = export_check(model, hf_dir, output_dir, check_rows[: options.export_check_utterances], context)
    (output_dir / EXPORT_CHECK).write_text(json.dumps(check, indent=2) + "\n")
    return check


# ---------------------------------------------------------------- precisions (one artifact each)


def prepare(source_dir: Path, precision: str, options: Options, output_dir: Path, context: BuildContext) -> dict:
    """Build one precision's packages from the export and list how each weight is stored."""
    from whisperbench.backends.coreml import recipes

    processor_files.copy(source_dir, output_dir)
    shutil.copy2(source_dir / WEIGHT_NAMES, output_dir / WEIGHT_NAMES)
    details = recipes.build(Path(source_dir), precision, options, Path(output_dir), context)
    return details | {"numerics_here": None if can_predict() else NUMERICS_OFF_MACOS}


def load(artifact_dir: Path, precision: str, options: Options, decoding: Decoding, threads: int):
    if can_predict():
        from whisperbench.backends.coreml.runtime import CoreMLTranscriber

        return CoreMLTranscriber.load(Path(artifact_dir), options, decoding)
    from whisperbench.backends.coreml.check import pytorch_transcriber

    return pytorch_transcriber(Path(artifact_dir), decoding, threads)


def stored_tensors(artifact_dir: Path) -> list:
    """The packages' weights as stored: float consts and each compressed weight's payload and tables."""
    from whisperbench.backends.coreml import weights

    return weights.stored_tensors(artifact_dir)
