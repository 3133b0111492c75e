"""The backends whisperbench knows: name → where its module is and what it supports.

The module is imported only when a backend is used, so validating params never imports torch,
onnxruntime or coremltools. Adding a backend = one module + one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendSpec:
    name: str
    module: str
    precisions: tuple[str, ...]
    exports: bool = False  # True: one export per model (rule `export`) feeds every precision's build
    label: str = ""  # short name in plot labels (two backends' cells often sit at one point)
    peer: bool = False  # a peer runtime users compare against (its own markers in the plots)
    # True where the thread count changes the numerics (ggml splits its reductions across threads): the
    # accuracy pass then runs on `timing.threads` too, so both passes decode with the same arithmetic.
    threads_change_numerics: bool = False
    # True where the runtime's API computes the decoder's cross-attention keys/values inside generation (so
    # its encoder ms stops before them, unlike every other backend's): its cells are flagged in the table and
    # marked in the latency figure, their K/V counted in the first decoder step instead.
    encoder_excludes_cross_kv: bool = False

    def load_module(self):
        return importlib.import_module(self.module)

    def unsupported_reason(self, precision: str) -> str | None:
        return self.load_module().unsupported_reason(precision)

    def options_class(self):
        return self.load_module().Options

    def speed_unavailable(self) -> str | None:
        """Why this backend's speed and memory cannot be measured on this machine (None: they can)."""
        module = self.load_module()
        return module.speed_unavailable() if hasattr(module, "speed_unavailable") else None


BACKENDS: dict[str, BackendSpec] = {
    "pytorch": BackendSpec(
        name="pytorch",
        module="whisperbench.backends.pytorch",
        precisions=(
            "fp32",
            "bf16",
            "fp16",
            "int8",
            "int8_torchao",
            "int4",
            "int4_quanto",
            "int4_mixed",
            "int4_fixedmix",
        ),
        label="PT",
    ),
    "onnxruntime": BackendSpec(
        name="onnxruntime",
        module="whisperbench.backends.onnxruntime",
        precisions=("fp32", "fp16", "int8_dynamic", "int8_static", "int4", "int4_mixed", "int4_fixedmix"),
        exports=True,
        label="ORT",
    ),
    "coreml": BackendSpec(
        name="coreml",
        module="whisperbench.backends.coreml",
        precisions=(
            "fp32",
            "fp16",
            "int8",
            "int4",
            "pal4",
            "pal6",
            "int4_mixed",
            "int4_fixedmix",
            "pal4_mixed",
            "pal4_fixedmix",
        ),  # fmt: skip
        exports=True,
        label="CML",
    ),
    "ctranslate2": BackendSpec(
        name="ctranslate2",
        module="whisperbench.backends.ctranslate2",
        precisions=("fp32", "fp16", "bf16", "int16", "int8", "int8_float32", "int8_bf16", "int8_fp16"),
        label="CT2",
        peer=True,
        encoder_excludes_cross_kv=True,  # encode() only; generate() computes the K/V
    ),
    "whispercpp": BackendSpec(
        name="whispercpp",
        module="whisperbench.backends.whispercpp",
        precisions=("f16", "q8_0", "q5_0", "q4_0"),
        label="W.cpp",
        peer=True,
        threads_change_numerics=True,
    ),
}


def get(name: str) -> BackendSpec:
    return BACKENDS[name]
