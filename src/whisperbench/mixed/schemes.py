"""Each backend's 4-bit scheme as a quantize-dequantize of one weight tensor (torch, fp32 in and out).

`sym4`: symmetric blocks along the input features, the value of largest magnitude in a block mapped to -8,
codes in [-8, 7], one scale per block — exactly what onnxruntime's MatMulNBits quantizer (symmetric, fp32
scales; checked against its C++ quantizer in tests) and this project's PyTorch int4 (bf16 scales) store.
A scheme is named `sym4_b<block>_<scale dtype>`; the sensitivity pass of a model runs once per scheme.
"""

from __future__ import annotations

from dataclasses import dataclass

SCALE_DTYPES = ("fp32", "bf16")


@dataclass(frozen=True)
class Scheme:
    block: int
    scale_dtype: str = "fp32"

    @property
    def name(self) -> str:
        return f"sym4_b{self.block}_{self.scale_dtype}"

    @classmethod
    def parse(cls, name: str) -> Scheme:
        kind, block, scale = name.split("_")
        if kind != "sym4" or not block.startswith("b") or scale not in SCALE_DTYPES:
            raise ValueError(f"unknown 4-bit scheme {name!r} (expected sym4_b<block>_<fp32|bf16>)")
        return cls(int(block[1:]), scale)

    def quantize_dequantize(self, weight):
        """The weight as the backend reads it back: rows are output features (a convolution's input channels
        and taps flattened), zero-padded to whole blocks."""
        import torch

        shape = weight.shape
        rows = weight.detach().float().reshape(shape[0], -1)
        width = rows.shape[1]
        padded = -(-width // self.block) * self.block
        rows = torch.nn.functional.pad(rows, (0, padded - width))
        blocks = rows.reshape(rows.shape[0], -1, self.block)
        extreme = blocks.gather(-1, blocks.abs().argmax(-1, keepdim=True))
        scales = extreme / -8
        if self.scale_dtype == "bf16":
            scales = scales.to(torch.bfloat16).float()
        safe = torch.where(scales == 0, torch.ones_like(scales), scales)
        codes = torch.round(blocks / safe).clamp(-8, 7)
        return (codes * scales).reshape(rows.shape[0], padded)[:, :width].reshape(shape).to(weight.dtype)
