"""Each backend's 4-bit scheme as a quantize-dequantize of one weight tensor (torch, fp32 in and out).

Both kinds are symmetric blocks along the input features, one scale per block:
* `sym4`: the value of largest magnitude in a block maps to -8, codes in [-8, 7] — exactly what
  onnxruntime's MatMulNBits quantizer (symmetric, fp32 scales; checked against its C++ quantizer in tests) and
  this project's PyTorch int4 (bf16 scales) store;
* `sym4r`: the restricted range, largest magnitude / 7 as the scale, codes in [-7, 7] — coremltools'
  `linear_symmetric` int4 per block (fp16 scales; checked against coremltools in tests).
A scheme is named `<kind>_b<block>_<scale dtype>`. `Palette` is Core ML's k-means palettization
(`pal4_g<group>`: a 16-entry table per group of output channels, computed by coremltools itself on the fp16
weight, so the pass sees exactly the palettes a build stores). The sensitivity pass runs once per scheme.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("sym4", "sym4r")
SCALE_DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Scheme:
    block: int
    scale_dtype: str = "fp32"
    kind: str = "sym4"

    @property
    def name(self) -> str:
        return f"{self.kind}_b{self.block}_{self.scale_dtype}"

    @classmethod
    def parse(cls, name: str) -> Scheme:
        parts = name.split("_")
        if len(parts) != 3 or parts[0] not in KINDS or not parts[1][1:].isdigit() or parts[2] not in SCALE_DTYPES:
            raise ValueError(
                f"unknown 4-bit scheme {name!r} (expected <{'|'.join(KINDS)}>_b<block>_<{'|'.join(SCALE_DTYPES)}>)"
            )
        return cls(int(parts[1][1:]), parts[2], parts[0])

    def _scales(self, blocks):
        import torch

        if self.kind == "sym4":
            scales = blocks.gather(-1, blocks.abs().argmax(-1, keepdim=True)) / -8
        else:
            scales = blocks.abs().amax(-1, keepdim=True) / 7
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.scale_dtype]
        return scales.to(dtype).float()

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
        scales = self._scales(blocks)
        safe = torch.where(scales == 0, torch.ones_like(scales), scales)
        codes = torch.round(blocks / safe).clamp(-8, 7)
        return (codes * scales).reshape(rows.shape[0], padded)[:, :width].reshape(shape).to(weight.dtype)


@dataclass(frozen=True)
class Palette:
    """coremltools' k-means palettization, grouped channel-wise: `group` output channels per table, or input
    channels where the group does not divide the output channels (as the Core ML recipe groups them)."""

    nbits: int = 4
    group: int = 8

    @property
    def name(self) -> str:
        return f"pal{self.nbits}_g{self.group}"

    def _axis(self, shape) -> int | None:
        if not shape[0] % self.group:
            return 0
        return 1 if len(shape) > 1 and not shape[1] % self.group else None

    def quantize_dequantize(self, weight):
        import numpy as np
        import torch
        from coremltools.optimize.coreml._quantization_passes import palettize_weights

        values = weight.detach().to(torch.float16).numpy()
        axis = self._axis(values.shape)
        if axis is None:  # no grouping fits: the recipe leaves it float
            return weight
        lut = palettize_weights.grouped_channelwise_compress(values, "KMEANS", self.nbits, axis, self.group)
        dense = np.asarray(palettize_weights.decompress(lut), dtype=np.float32)
        return torch.from_numpy(dense).to(weight.dtype)


def parse(name: str) -> Scheme | Palette:
    """A scheme from its name (ValueError: the one-line reason)."""
    parts = name.split("_")
    if len(parts) == 2 and parts[0] == "pal4" and parts[1][:1] == "g" and parts[1][1:].isdigit():
        return Palette(4, int(parts[1][1:]))
    try:
        return Scheme.parse(name)
    except ValueError:
        raise ValueError(
            f"unknown 4-bit scheme {name!r} (expected <{'|'.join(KINDS)}>_b<block>_<{'|'.join(SCALE_DTYPES)}>"
            " or pal4_g<group>)"
        ) from None
