"""ONNX Runtime backend: one FP32 export per model, then FP32, FP16, INT8 dynamic, INT8 static (QDQ), INT4.

`export` (export.py) writes the two graphs of `graphs` once per model and checks them against PyTorch
FP32 on real clips; `prepare` (recipes.py) turns that export into one precision:

* fp32: the export as is;
* fp16: `onnxruntime.transformers.float16` (inputs/outputs stay float32);
* int8_dynamic: `quantize_dynamic`, per-channel int8 weights; 7-bit weights (`reduce_range`)
  unless the CPU has VNNI, as ONNX Runtime advises (saturation in u8s8 kernels without it);
* int8_static: `quantize_static`, QDQ, activations calibrated on utterances disjoint from the
  evaluation sets (the export's calibration manifest), for the encoder; the decoder step is
  quantized dynamically (static ranges made it hallucinate, see `_int8_static`);
* int4: `MatMulNBitsQuantizer` (weight-only, symmetric blocks of `int4_block_size`);
* int4_mixed / int4_fixedmix: the same, with the mix's groups at 8 bits (`mixed.py`).

Every quantized recipe stores Whisper's tied token embedding / output projection once: the embedding
reads the projection's quantized weights (`tied.py`).

Both INT8 recipes keep attention's activation × activation MatMuls, convolutions, layer norms,
softmax and the position tables in float. Decoding is greedy with the KV cache and the same
rules as the PyTorch backend (forced prompt, suppressed tokens, no timestamps, max new tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from whisperbench.backends.base import BackendOptions, greedy_without_timestamps
from whisperbench.backends.onnxruntime import graphs
from whisperbench.mixed.plan import check_budget

PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_static", "int4", "int4_mixed", "int4_fixedmix")
# Mixed int4/int8 on MatMulNBits (mixed.py, mixed/plan.py): the sensitivity pass's ranking, or the fixed order.
MIXED = {"int4_mixed": "sensitivity", "int4_fixedmix": "fixed"}
# The libraries this backend's results depend on: recorded, with their versions, in every cell's run record.
LIBRARIES = ("onnxruntime", "onnx")
MAX_AUDIO_S = 30.0  # one 30 s window per utterance: no long-form decoding
# The options the export reads: changing any other (a recipe's, the budget's) rebuilds only the precisions.
EXPORT_OPTIONS = ("opset", "export_check_utterances")
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
CALIBRATION_METHODS = ("minmax", "percentile")
EXPORT_CHECK = "export_check.json"
CALIBRATION = "calibration.jsonl"
MIN_IDENTICAL = 0.99  # share of check utterances whose FP32 ONNX transcript must equal PyTorch's


# Peak memory of each build step (precision, or the export): (MB, bytes per parameter), the least-squares line
# over tiny, base, small, medium, large-v3-turbo, large-v3 and distil-large-v3 with random weights (where each ran:
# benchmarks/scaling.py, benchmarks/results/scaling-2026-12-03).
# A step that would need more than the machine has available is refused before it starts (artifacts.py).
BUILD_MEMORY = {
    "export": (1305, 12.05),
    "fp16": (844, 5.14),
    "fp32": (249, -0.15),
    "int4": (1398, 2.82),
    "int8_dynamic": (1281, 6.65),
    "int8_static": (608, 37.13),
}

# Size on disk of each precision's artifact: (MB, bytes per parameter), the least-squares line over the same
# cells; a build is refused before it starts where the disk has less free (artifacts.py). Fitted before the
# quantized recipes stored the tied embedding once: int4 and int8 lines over-ask by one quantized
# embedding (tiny.en: 12 and 20 MB).
BUILD_DISK = {
    "fp16": (5, 2.00),
    "fp32": (5, 4.00),
    "int4": (28, 0.66),
    "int8_dynamic": (41, 1.06),
    "int8_static": (18, 1.52),
}
# The mixes: not fitted. Their builds peaked where int4's did (tiny.en 684 / 685 vs 706 MB, base 1009 / 1009 vs
# 1002: issue 22's study, 2026-12-07), so int4's memory line; on disk at most every movable weight at 8 bits,
# so int4's line with its bytes per parameter doubled (an upper bound).
BUILD_MEMORY |= {precision: BUILD_MEMORY["int4"] for precision in MIXED}
BUILD_DISK |= {precision: (BUILD_DISK["int4"][0], 2 * BUILD_DISK["int4"][1]) for precision in MIXED}


@dataclass(frozen=True)
class Options(BackendOptions):
    device: str = "cpu"  # cpu or cuda: the execution provider the sessions run on
    graph_optimization_level: str = "all"
    opset: int = graphs.OPSET
    int8_reduce_range: str | bool = "auto"
    calibration_utterances: int = 8
    calibration_method: str = "minmax"
    int4_block_size: int = 32
    int4_accuracy_level: int = 4
    export_check_utterances: int = 16
    mixed_bits_per_weight: float = 5.0  # int4_mixed / int4_fixedmix: the budget (effective bits per weight)

    def __post_init__(self):
        check_budget(self.mixed_bits_per_weight)
        checks = [
            ("device", self.device in PROVIDERS, ", ".join(PROVIDERS)),
            (
                "graph_optimization_level",
                self.graph_optimization_level in OPTIMIZATION_LEVELS,
                ", ".join(OPTIMIZATION_LEVELS),
            ),
            ("opset", isinstance(self.opset, int) and 17 <= self.opset <= 21, "an integer from 17 to 21"),
            ("int8_reduce_range", self.int8_reduce_range in ("auto", True, False), "auto, true, false"),
            ("calibration_utterances", _positive(self.calibration_utterances), "a positive integer"),
            ("calibration_method", self.calibration_method in CALIBRATION_METHODS, ", ".join(CALIBRATION_METHODS)),
            ("int4_block_size", self.int4_block_size in (16, 32, 64, 128, 256), "16, 32, 64, 128, 256"),
            ("int4_accuracy_level", self.int4_accuracy_level in (0, 1, 2, 3, 4), "0, 1, 2, 3, 4"),
            ("export_check_utterances", _positive(self.export_check_utterances), "a positive integer"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not allowed; allowed: {allowed}")


def mixed_scheme(options: Options, precision: str):
    """int4_mixed's scheme: MatMulNBits symmetric blocks, fp32 scales."""
    from whisperbench.mixed.schemes import Scheme

    return Scheme(options.int4_block_size, "fp32")


def mixed_widths(options: Options):
    """4 or 8 bits for every MatMul weight (the tied embedding's through its projection); the encoder's positions
    4 bits only: MatMulNBitsQuantizer quantizes a Gather table at 4 bits alone (asked for 8 it logs "Gather only
    supports 4 bits quantization" and leaves the node to the 4-bit pass). Convolutions, the decoder's positions
    (a GatherND), biases and norms fp32, as the uniform int4 recipe leaves them."""
    from whisperbench.mixed.budget import Widths
    from whisperbench.mixed.groups import CONV, DECODER_POSITIONS, ENCODER_POSITIONS

    return Widths(float_bits=32, fixed={CONV: 32, DECODER_POSITIONS: 32, ENCODER_POSITIONS: 4})


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def unsupported_reason(precision: str) -> str | None:
    return None


def batch_reason(precision: str) -> str | None:
    """Why batching would change this precision's transcripts (the accuracy pass then decodes one at a time)."""
    if precision in ("int8_dynamic", "int8_static"):
        # DynamicQuantizeLinear takes one scale over the whole activation tensor, so each utterance's
        # decoder inputs would be quantized with the range of the others in its batch.
        return f"{precision} quantizes decoder activations per tensor, across the batch"
    return None


def decoding_problem(decoding: dict) -> str | None:
    return greedy_without_timestamps("onnxruntime", decoding)


def environment_problem(options: Options) -> str | None:
    """Whether the chosen device's execution provider exists in this onnxruntime build (imports onnxruntime)."""
    if options.device == "cpu":
        return None
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if PROVIDERS[options.device] not in available:
        return (
            f"device: {options.device} ({PROVIDERS[options.device]}) is not available in this onnxruntime build "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use cpu"
        )
    return None


# The interface (base.py), from the modules that implement it; heavy libraries load on use.
from whisperbench.backends.onnxruntime.export import export  # noqa: E402
from whisperbench.backends.onnxruntime.graphs import stored_tensors  # noqa: E402
from whisperbench.backends.onnxruntime.recipes import prepare  # noqa: E402
from whisperbench.backends.onnxruntime.runtime import load  # noqa: E402

__all__ = ["PRECISIONS", "MAX_AUDIO_S", "Options", "batch_reason", "decoding_problem", "environment_problem"]
__all__ += ["export", "load", "prepare", "stored_tensors", "unsupported_reason"]
__all__ += ["MIXED", "mixed_scheme", "mixed_widths"]
