"""The backends whisperbench knows: name → where its module is and what it supports.

A backend's module is light to import (its runtime's libraries are imported on use), so validating params
never imports torch, onnxruntime or coremltools. What a backend can build (`PRECISIONS`), whether it exports
once per model (`export`), its options (`Options`) and libraries (`LIBRARIES`) come from its module; the entry
here says how its cells are drawn and compared. Adding a backend = one module + one entry here.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BackendSpec:
    name: str
    module: str
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

    @property
    def precisions(self) -> tuple[str, ...]:
        """What the module can build (`PRECISIONS`)."""
        return tuple(self.load_module().PRECISIONS)

    @property
    def exports(self) -> bool:
        """Whether one export per model (rule `export`: the module's `export`) feeds every precision's build."""
        return hasattr(self.load_module(), "export")

    def schema_path(self) -> Path:
        """The schema of `backends.<name>` in params (descriptions of its precisions and options): `schema.yaml`
        in a backend's folder, `<name>.schema.yaml` beside a single-file module."""
        module_file = Path(importlib.util.find_spec(self.module).origin)
        if module_file.name == "__init__.py":
            return module_file.with_name("schema.yaml")
        return module_file.with_suffix(".schema.yaml")

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
        label="PT",
    ),
    "onnxruntime": BackendSpec(
        name="onnxruntime",
        module="whisperbench.backends.onnxruntime",
        label="ORT",
    ),
    "coreml": BackendSpec(
        name="coreml",
        module="whisperbench.backends.coreml",
        label="CML",
    ),
    "ctranslate2": BackendSpec(
        name="ctranslate2",
        module="whisperbench.backends.ctranslate2",
        label="CT2",
        peer=True,
        encoder_excludes_cross_kv=True,  # encode() only; generate() computes the K/V
    ),
    "whispercpp": BackendSpec(
        name="whispercpp",
        module="whisperbench.backends.whispercpp",
        label="W.cpp",
        peer=True,
        threads_change_numerics=True,
    ),
}


def get(name: str) -> BackendSpec:
    return BACKENDS[name]
