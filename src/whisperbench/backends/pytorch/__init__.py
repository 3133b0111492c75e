"""PyTorch (transformers) backend: FP32, BF16, FP16, INT8 dynamic (torch.ao x86 engine, or torchao), INT4
weight-only (torch's CPU int4 kernel, or optimum-quanto).

INT8 (`int8.py`) is torch.ao's dynamic quantization on the x86 engine (fbgemm's int8 kernels, VNNI where the
CPU has it) on every Linear, per output channel, the tied output projection included, its int8 rows also
serving as the token embedding (stored once). `int8_torchao` is torchao's `Int8DynamicActivationInt8WeightConfig`
in eager mode, `proj_out` and the embedding fp32. INT4 (`int4.py`) calls torch's CPU int4 GEMM directly (the
kernel of torchao's `Int4CPULayout`, whose configs need `mslk` or CUDA with torch 2.13) on bf16 activations,
every Linear and the tied embedding at 4 bits, stored once; `int4_quanto` is optimum-quanto's `qint4`
weights, `proj_out` and the embedding fp32.

`recipes` builds each precision's artifact and reads it back; `runtime` transcribes and times it.
"""

from __future__ import annotations

from dataclasses import dataclass

from whisperbench.backends.base import BackendOptions
from whisperbench.backends.pytorch.int4 import GROUP_SIZES
from whisperbench.backends.pytorch.recipes import FLOAT_DTYPES, prepare, stored_tensors
from whisperbench.backends.pytorch.runtime import PyTorchTranscriber, load
from whisperbench.mixed.plan import check_budget

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int8_torchao", "int4", "int4_quanto", "int4_mixed", "int4_fixedmix")
# Mixed int4/int8 (mixed/plan.py): int4_mixed promotes the groups with the most damage per weight in the
# sensitivity pass, int4_fixedmix the embedding and the first and last layers (no measurement), within the budget.
MIXED = {"int4_mixed": "sensitivity", "int4_fixedmix": "fixed"}
# The libraries this backend's results depend on: recorded, with their versions, in every cell's run record.
LIBRARIES = ("torchao", "optimum-quanto")
MAX_AUDIO_S = 30.0  # short-form decoding only: transformers' long-form path forces timestamps
_probe_cache: dict[str, str | None] = {}


# Peak memory of each build step (precision, or the export): (MB, bytes per parameter), the least-squares line
# over tiny, base, small, medium, large-v3-turbo, large-v3 and distil-large-v3 with random weights (where each ran:
# benchmarks/scaling.py, benchmarks/results/scaling-2026-12-03).
# A step that would need more than the machine has available is refused before it starts (artifacts.py).
BUILD_MEMORY = {
    "bf16": (426, 5.71),
    "fp16": (427, 5.71),
    "fp32": (127, 5.72),
    "int4_quanto": (946, 6.27),  # measured as int4 before torch's CPU int4 kernel took that name (int4.py)
    "int8_torchao": (506, 5.67),  # measured as int8 before torch.ao's x86 recipe took that name (int8.py)
}

# Size on disk of each precision's artifact: (MB, bytes per parameter), the least-squares line over the same
# cells; a build is refused before it starts where the disk has less free (artifacts.py).
BUILD_DISK = {
    "bf16": (4, 2.00),
    "fp16": (4, 2.00),
    "fp32": (4, 4.00),
    "int4_quanto": (111, 0.69),
    "int8_torchao": (98, 1.12),
}


@dataclass(frozen=True)
class Options(BackendOptions):
    attn_implementation: str = "sdpa"
    device: str = "cpu"
    int4_group_size: int = 32  # int4: input values sharing one bf16 scale
    compile: bool = False  # torch.compile the encoder and decoder at load (compile time recorded apart)
    mixed_bits_per_weight: float = 5.0  # int4_mixed / int4_fixedmix: the budget (effective bits per weight)

    def __post_init__(self):
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation {self.attn_implementation!r} is not one of: sdpa, eager")
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r} is not one of: {', '.join(DEVICES)}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile {self.compile!r} is not one of: true, false")
        check_budget(self.mixed_bits_per_weight)
        if self.int4_group_size not in GROUP_SIZES:
            raise ValueError(
                f"int4_group_size {self.int4_group_size!r} is not one of: {', '.join(map(str, GROUP_SIZES))}"
            )


DEVICES = ("cpu", "cuda")
# The quantized artifacts hold CPU kernels' layouts (fbgemm's and torchao's int8, quanto's int4 on CPU) and were only
# checked there; on a GPU only the float precisions run.
CUDA_PRECISIONS = ("fp32", "bf16", "fp16")


def mixed_scheme(options: Options, precision: str):
    """int4_mixed's scheme: the int4 recipe's groups, bf16 scales."""
    from whisperbench.mixed.schemes import Scheme

    return Scheme(options.int4_group_size, "bf16")


def mixed_widths(options: Options):
    """int4 or int8 for every Linear and the tied embedding; convolutions, positions, biases and norms bf16."""
    from whisperbench.mixed.budget import Widths
    from whisperbench.mixed.groups import CONV, DECODER_POSITIONS, ENCODER_POSITIONS

    return Widths(float_bits=16, fixed={CONV: 16, ENCODER_POSITIONS: 16, DECODER_POSITIONS: 16})


def environment_problem(options: Options) -> str | None:
    """Whether the installed torch can run on the chosen device (imports torch only for cuda)."""
    if options.device == "cpu":
        return None
    from importlib.metadata import version

    installed = version("torch")
    if installed.endswith("+cpu"):
        return (
            f"device: cuda needs a CUDA build of torch; the installed torch {installed} is the CPU build "
            "(envs/requirements.txt); install a CUDA build or use cpu"
        )
    import torch

    if not torch.cuda.is_available():
        return f"device: cuda: torch {installed} finds no CUDA GPU on this machine; use cpu"
    return None


def precision_problem(precision: str, options: Options) -> str | None:
    if options.device == "cuda" and precision not in CUDA_PRECISIONS:
        return f"{precision} artifacts are built for CPU kernels; on device cuda use {', '.join(CUDA_PRECISIONS)}"
    return None


def unsupported_reason(precision: str) -> str | None:
    """Half precisions need CPU kernels for matmul and conv; probe them once with a tiny op."""
    if precision not in ("bf16", "fp16"):
        return None
    if precision not in _probe_cache:
        import torch

        dtype = getattr(torch, FLOAT_DTYPES[precision])
        try:
            torch.nn.functional.conv1d(torch.ones(1, 2, 4, dtype=dtype), torch.ones(2, 2, 3, dtype=dtype))
            torch.ones(2, 2, dtype=dtype) @ torch.ones(2, 2, dtype=dtype)
            _probe_cache[precision] = None
        except RuntimeError as error:
            _probe_cache[precision] = f"this CPU build of torch has no {precision} kernels ({error})"
    return _probe_cache[precision]


def batch_reason(precision: str) -> str | None:
    """Why batching would change this precision's transcripts (the accuracy pass then decodes one at a time)."""
    if precision == "int8":
        # torch.ao's dynamic Linear takes one activation scale over the whole input tensor, so each utterance's
        # activations would be quantized with the range of the others in its batch (measured: batched and
        # single transcripts agreed on 50-56 % of 16 timed utterances at batch 8)
        return "int8 quantizes activations per tensor, across the batch"
    return None


def decoding_problem(decoding: dict) -> str | None:
    """Beam search cannot be timed step by step: transformers refuses a streamer with num_beams > 1."""
    if decoding.get("num_beams", 1) != 1:
        return "decoding.num_beams: pytorch times each decoder step with a streamer, which beam search refuses; set 1"
    return None


__all__ = ["BUILD_DISK", "BUILD_MEMORY", "MAX_AUDIO_S", "PRECISIONS", "Options", "PyTorchTranscriber"]
__all__ += ["decoding_problem", "environment_problem", "load", "precision_problem", "prepare", "stored_tensors"]
__all__ += ["MIXED", "batch_reason", "mixed_scheme", "mixed_widths", "unsupported_reason"]
