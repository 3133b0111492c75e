"""Where an artifact's bytes go: its stored tensors grouped by what they hold, against params × bits / 8.

Each backend lists the tensors its files store (`stored_tensors(artifact_dir)`, read from the files
themselves: safetensors headers, ONNX initializers, Core ML programs, CTranslate2's model.bin, ggml
records). This module groups them the same way for every backend:

* `quantized weights`: integer payloads (int8, int4, k-means indices, ggml blocks less their scales);
* `scales / tables`: what turns the payload back into floats (scales, zero points, look-up tables);
* `embeddings (float)`: token and positional embeddings kept in floating point;
* `float weights kept`: other weights large enough to quantize (2-D and up, more than 2048 values) kept float;
* `small tensors`: norms, biases and other small tensors (no recipe quantizes them), integer tables;
* `other files`: everything else in the artifact (tokenizer, configs, graphs, format overhead).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

# A weight with more values than this is one a quantization recipe would normally compress.
LARGE = 2048
EMBEDDING = re.compile(r"embed|token_embedding|positional|position_enc")
GROUPS = (
    "quantized weights",
    "scales / tables",
    "embeddings (float)",
    "float weights kept",
    "small tensors",
    "other files",
)


@dataclass(frozen=True)
class StoredTensor:
    """One tensor as an artifact's file stores it."""

    name: str
    dtype: str  # as stored: float32, float16, bfloat16, int8, uint4, q4_0, ...
    shape: tuple[int, ...]
    nbytes: int  # bytes of its values in the file
    file: str  # the file (relative to the artifact folder) that holds it
    scales: bool = False  # True: scales, zero points or a look-up table of a quantized weight

    @property
    def quantized(self) -> bool:
        """An 8-bit or narrower integer payload (wider integers are indices and shapes, scalars are flags)."""
        if self.scales or self.dtype.startswith(("float", "bfloat")) or not self.shape:
            return False
        width = re.search(r"\d+", self.dtype)
        return not width or int(width.group()) <= 8


def nominal_bits(precision: str) -> int:
    """Bits per weight a precision's name promises: int8 → 8, q5_0 → 5, pal6 → 6, bf16 → 16, fp32 → 32."""
    match = re.search(r"(?:int|pal|fp|bf|f|q)(\d+)", precision)
    if not match:
        raise ValueError(f"precision {precision!r} names no bit width")
    return int(match.group(1))


def group_of(tensor: StoredTensor) -> str:
    if tensor.scales:
        return "scales / tables"
    if tensor.quantized:
        return "quantized weights"
    if EMBEDDING.search(tensor.name):
        return "embeddings (float)"
    large = len(tensor.shape) >= 2 and math.prod(tensor.shape) > LARGE
    return "float weights kept" if large else "small tensors"


def breakdown(artifact_dir: Path, tensors: list[StoredTensor]) -> dict:
    """{group: bytes} of an artifact folder, plus the float tensors kept large (names) and the total."""
    artifact_dir = Path(artifact_dir)
    total = sum(f.stat().st_size for f in artifact_dir.rglob("*") if f.is_file())
    groups = dict.fromkeys(GROUPS, 0)
    for tensor in tensors:
        groups[group_of(tensor)] += tensor.nbytes
    groups["other files"] = total - sum(groups.values())
    kept = sorted(t.name for t in tensors if group_of(t) == "float weights kept")
    return {"total_bytes": total, "groups": groups, "float_weights_kept": kept}


def safetensors_tensors(path: Path, root: Path) -> list[StoredTensor]:
    """Every tensor of a safetensors file, from its header (no values are read)."""
    import json
    import struct

    with open(path, "rb") as handle:
        header = json.loads(handle.read(struct.unpack("<Q", handle.read(8))[0]))
    header.pop("__metadata__", None)
    names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I8": "int8", "U8": "uint8"}
    return [
        StoredTensor(
            name=name,
            dtype=names.get(entry["dtype"], entry["dtype"].lower()),
            shape=tuple(entry["shape"]),
            nbytes=entry["data_offsets"][1] - entry["data_offsets"][0],
            file=str(path.relative_to(root)),
            scales=bool(re.search(r"(_scale|_shift|_zero_point)$", name)),
        )
        for name, entry in header.items()
    ]
