"""PyTorch int4 on torch's own CPU int4 kernel: `aten._weight_int4pack_mm_for_cpu`, the GEMM that torchao's
`Int4CPULayout` and optimum-quanto's TinyGemm int4 call on CPU, with bf16 activations.

Every Linear, the output projection included, holds 4-bit weights in symmetric groups along its input
(`int4_group_size` values share one bf16 scale; the value of largest magnitude maps to -8, as ggml's q4_0
does); everything else (convolutions, layer norms, positions, attention) computes in bf16, so this recipe
is int4 weights on bf16 compute, as that kernel requires (fp32 activations take its reference path, 2x
slower than fp32's GEMM here). The token embedding reads its rows from the projection's 4-bit weights, so
the tied 51864 x d matrix is stored once, at 4 bits.

The file stores the portable layout (two 4-bit values per byte, low nibble first, plus bf16 scales), which
`load_into` repacks into the kernel's layout (output features padded to a multiple of 16, as it needs).
"""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = "model_int4.safetensors"
LAYOUT = "quantization.json"
GROUP_SIZES = (32, 64, 128)  # the kernel's; Whisper's widths (384 ... 5120) are multiples of 128
EMBEDDING = "model.decoder.embed_tokens"
PROJECTION = "proj_out"


def recipe(group_size: int) -> str:
    return (
        f"int4 weights, symmetric groups of {group_size} (bf16 scales), every Linear incl. proj_out, "
        "torch CPU int4 GEMM (_weight_int4pack_mm_for_cpu) on bf16 activations; tied embedding read from "
        "proj_out; other tensors bf16"
    )


def quantize_weight(weight, group_size: int):
    """(nibbles [N, K/2] uint8 holding q + 8, scales [N, K/group] bf16) with weight ≈ q x scale, q in [-8, 7]."""
    import torch

    rows, width = weight.shape
    groups = weight.float().reshape(rows, width // group_size, group_size)
    extreme = groups.gather(-1, groups.abs().argmax(-1, keepdim=True))  # signed value of largest magnitude
    scales = (extreme / -8).to(torch.bfloat16)
    safe = torch.where(scales == 0, torch.ones_like(scales), scales).float()
    values = (torch.round(groups / safe).clamp(-8, 7) + 8).to(torch.uint8).reshape(rows, width)
    return values[:, 0::2] | (values[:, 1::2] << 4), scales.squeeze(-1)


def unpack(nibbles):
    """The [..., K] values q + 8 (0 ... 15) of [..., K/2] packed bytes."""
    import torch

    return torch.stack([nibbles & 0x0F, nibbles >> 4], dim=-1).reshape(*nibbles.shape[:-1], -1)


def _linear_class():
    import torch

    class Int4Linear(torch.nn.Module):
        """y = x W^T + b with W in the kernel's packed int4 layout; bf16 in, bf16 out."""

        def __init__(self, nibbles, scales, bias, group_size: int):
            super().__init__()
            self.out_features, self.in_features = nibbles.shape[0], nibbles.shape[1] * 2
            self.group_size = group_size
            padded = -(-self.out_features // 16) * 16
            values = torch.zeros(padded, self.in_features, dtype=torch.int32)
            values[: self.out_features] = unpack(nibbles)
            self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(values, 1))
            scale_rows = torch.zeros(padded, scales.shape[1], dtype=torch.bfloat16)
            scale_rows[: self.out_features] = scales
            # [K/group, N, 2]: (scale, offset); the kernel computes (q - 8) x scale + offset
            scales_and_zeros = torch.stack([scale_rows.t(), torch.zeros_like(scale_rows.t())], dim=-1)
            self.register_buffer("scales_and_zeros", scales_and_zeros.contiguous())
            self.register_buffer("bias", None if bias is None else bias.to(torch.bfloat16))

        def forward(self, x):
            flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
            out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group_size, self.scales_and_zeros)
            out = out[:, : self.out_features]
            if self.bias is not None:
                out = out + self.bias
            return out.reshape(*x.shape[:-1], self.out_features)

    return Int4Linear


def quantize_weight_int8(weight):
    """(int8 values [N, K], bf16 scales [N]): symmetric per output feature, largest magnitude at 127."""
    import torch

    scales = (weight.float().abs().amax(dim=1) / 127).to(torch.bfloat16)
    safe = torch.where(scales == 0, torch.ones_like(scales), scales).float()
    return torch.round(weight.float() / safe[:, None]).clamp(-127, 127).to(torch.int8), scales


def _int8_linear_class():
    import torch

    class Int8WeightLinear(torch.nn.Module):
        """y = x W^T + b with int8 weights per output feature (torch's CPU int8 weight-only GEMM); bf16 in/out."""

        def __init__(self, values, scales, bias):
            super().__init__()
            self.out_features, self.in_features = values.shape
            # copies: the kernel reads with aligned vector loads, and a tensor memory-mapped from the file
            # starts wherever its offset falls (seen: a segmentation fault on one layer of three)
            self.register_buffer("values", values.clone())
            self.register_buffer("scales", scales.clone())
            self.register_buffer("bias", None if bias is None else bias.to(torch.bfloat16))

        def forward(self, x):
            flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
            out = torch.ops.aten._weight_int8pack_mm(flat, self.values, self.scales)
            if self.bias is not None:
                out = out + self.bias
            return out.reshape(*x.shape[:-1], self.out_features)

    return Int8WeightLinear


def _int8_embedding_class():
    import torch

    class TiedInt8Embedding(torch.nn.Module):
        """The token embedding read from the output projection's int8 rows: row x its scale."""

        def __init__(self, values, scales):
            super().__init__()
            self.register_buffer("values", values, persistent=False)
            self.register_buffer("scales", scales, persistent=False)
            self.num_embeddings, self.embedding_dim = values.shape

        def forward(self, ids):
            return self.values[ids].to(torch.bfloat16) * self.scales[ids].unsqueeze(-1)

    return TiedInt8Embedding


def _embedding_class():
    import torch

    class TiedInt4Embedding(torch.nn.Module):
        """The token embedding read from the output projection's 4-bit rows: (q - 8) x the group's scale."""

        def __init__(self, nibbles, scales):
            super().__init__()
            self.register_buffer("nibbles", nibbles, persistent=False)
            self.register_buffer("scales", scales, persistent=False)
            self.num_embeddings, self.embedding_dim = nibbles.shape[0], nibbles.shape[1] * 2

        def forward(self, ids):
            values = unpack(self.nibbles[ids]).to(torch.bfloat16) - 8
            groups = values.reshape(*ids.shape, self.scales.shape[1], -1) * self.scales[ids].unsqueeze(-1)
            return groups.reshape(*ids.shape, self.embedding_dim)

    return TiedInt4Embedding


def _linears(model) -> list[tuple[str, object]]:
    import torch

    return [(name, module) for name, module in model.named_modules() if type(module) is torch.nn.Linear]


def save(model, output_dir: Path, group_size: int, int8_linears: frozenset[str] = frozenset()) -> None:
    """Quantize every Linear of the fp32 model and write the int4 file (`int8_linears`: those stored at 8 bits
    per output feature instead, a mixed recipe's high-width groups); nothing else is quantized (bf16)."""
    import torch
    from safetensors.torch import save_file

    state = {}
    layout = {"group_size": group_size, "linears": [], "linears_int8": []}
    for name, module in _linears(model):
        if name in int8_linears:
            values, scales = quantize_weight_int8(module.weight.detach())
            state[f"{name}.weight_int8"], state[f"{name}.weight_scale"] = values, scales
            layout["linears_int8"].append(name)
        else:
            nibbles, scales = quantize_weight(module.weight.detach(), group_size)
            state[f"{name}.weight_nibbles"], state[f"{name}.weight_scale"] = nibbles, scales
            layout["linears"].append(name)
        if module.bias is not None:
            state[f"{name}.bias"] = module.bias.detach().to(torch.bfloat16)
    quantized = set(layout["linears"]) | set(layout["linears_int8"])
    for key, tensor in model.state_dict().items():
        owner = key.rsplit(".", 1)[0]
        if owner not in quantized and owner != EMBEDDING:
            state[key] = tensor.detach().to(torch.bfloat16).contiguous()
    save_file(state, output_dir / WEIGHTS)
    (output_dir / LAYOUT).write_text(
        json.dumps({key: sorted(value) if isinstance(value, list) else value for key, value in layout.items()})
    )


def load_into(model, artifact_dir: Path) -> None:
    """Fill a meta-device skeleton: int4 Linears, the embedding from proj_out's nibbles, bf16 for the rest."""
    import torch
    from safetensors.torch import load_file

    layout = json.loads((artifact_dir / LAYOUT).read_text())
    state = load_file(artifact_dir / WEIGHTS)
    linear = _linear_class()
    for name in layout["linears"]:
        parent, _, child = name.rpartition(".")
        nibbles, scales = state.pop(f"{name}.weight_nibbles"), state.pop(f"{name}.weight_scale")
        module = linear(nibbles, scales, state.pop(f"{name}.bias", None), layout["group_size"])
        setattr(model.get_submodule(parent) if parent else model, child, module)
        if name == PROJECTION:
            model.model.decoder.embed_tokens = _embedding_class()(nibbles, scales)
    for name in layout.get("linears_int8", []):
        parent, _, child = name.rpartition(".")
        values, scales = state.pop(f"{name}.weight_int8"), state.pop(f"{name}.weight_scale")
        module = _int8_linear_class()(values, scales, state.pop(f"{name}.bias", None))
        setattr(model.get_submodule(parent) if parent else model, child, module)
        if name == PROJECTION:
            model.model.decoder.embed_tokens = _int8_embedding_class()(module.values, module.scales)
    model.load_state_dict(state, strict=False, assign=True)
    missing = [key for key, value in model.state_dict().items() if value.is_meta]
    if missing:
        raise ValueError(f"{artifact_dir / WEIGHTS}: no values for {missing[:3]}")
    model.to(torch.bfloat16).eval()
