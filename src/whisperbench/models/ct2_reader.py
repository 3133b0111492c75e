"""Read CTranslate2's `model.bin` (its binary model spec) into numpy arrays.

The layout mirrors CTranslate2's writer (`ctranslate2/specs/model_spec.py::_serialize`):
a u32 binary version, the spec name, a u32 revision, the variables (name, rank, dims,
dtype id, byte count, raw bytes), then (alias, target) pairs. Reading it ourselves keeps
ctranslate2 out of the conversion path; the tests compare against ctranslate2 itself.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from whisperbench.errors import UserError

_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
    5: "bfloat16",
}


class _Cursor:
    def __init__(self, buffer: bytes, source: Path):
        self.buffer = buffer
        self.offset = 0
        self.source = source

    def take(self, count: int) -> bytes:
        end = self.offset + count
        if end > len(self.buffer):
            raise UserError(
                f"{self.source}: truncated CTranslate2 model (needs {end} bytes, has "
                f"{len(self.buffer)}); re-fetch the weights"
            )
        chunk = self.buffer[self.offset : end]
        self.offset = end
        return chunk

    def unpack(self, fmt: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        length = self.unpack("H")
        return self.take(length)[:-1].decode("utf-8")


def _array(raw: bytes, dtype_id: int, dims: tuple[int, ...]) -> np.ndarray:
    dtype = _DTYPES[dtype_id]
    if dtype == "bfloat16":
        as_u16 = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return as_u16.view(np.float32).reshape(dims)
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


def read_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Return the spec name and every variable, aliases resolved to their targets."""
    cursor = _Cursor(Path(path).read_bytes(), Path(path))
    version = cursor.unpack("I")
    if version < 5:
        raise UserError(f"{path}: CTranslate2 binary version {version} is too old (need 5+)")
    spec_name = cursor.string()
    cursor.unpack("I")  # spec revision: the variable names below already encode it
    variables: dict[str, np.ndarray] = {}
    for _ in range(cursor.unpack("I")):
        name = cursor.string()
        rank = cursor.unpack("B")
        dims = tuple(cursor.unpack("I") for _ in range(rank))
        dtype_id = cursor.unpack("B")
        if dtype_id not in _DTYPES:
            raise UserError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        byte_count = cursor.unpack("I")
        variables[name] = _array(cursor.take(byte_count), dtype_id, dims)
    for _ in range(cursor.unpack("I")):
        alias = cursor.string()
        variables[alias] = variables[cursor.string()]
    return spec_name, variables
