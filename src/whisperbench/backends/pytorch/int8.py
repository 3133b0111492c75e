"""PyTorch int8 as a PyTorch CPU user runs it: dynamic quantization on the x86 engine (fbgemm's int8 GEMMs,
VNNI where the CPU has it), every Linear layer per output channel, the output projection included.

Whisper ties its output projection (`proj_out`) to the decoder's token embedding. The projection is quantized
like every other Linear; the embedding then reads its rows from the projection's int8 weight (row x its
scale), so the 51864 x d tied matrix is stored once, in int8, as in whisper.cpp and CTranslate2 (int8
embedding lookups), instead of an fp32 embedding beside an int8 projection.

torch.ao's eager quantization API is deprecated in favour of torchao, whose dynamic int8 runs in eager mode
through Python tensor subclasses (activations quantized per call, no fused kernel) and decoded slower than
fp32 here: see the README's PyTorch int8 section for the measurements behind this choice.
"""

from __future__ import annotations

import warnings
from pathlib import Path

WEIGHTS = "model_int8_x86.pt"
RECIPE = (
    "torch.ao dynamic int8 (x86 engine), per output channel, every Linear; tied embedding read from proj_out; "
    "activations per tensor, 8 bits with VNNI (7 without)"
)
EMBEDDING = "model.decoder.embed_tokens"


def _engine():
    import torch

    torch.backends.quantized.engine = "x86"  # fbgemm's kernels, with onednn where it is faster
    warnings.filterwarnings("ignore", message=r".*(torch\.ao\.quantization|quantize_per_channel).*deprecated")
    return torch


def quantize(model) -> None:
    """Quantize every Linear in place (the tie to the embedding is dropped: `state_to_save` omits the embedding)."""
    torch = _engine()
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def state_to_save(model) -> dict:
    """The quantized model's state without the fp32 token embedding (`load_into` rebuilds it from proj_out)."""
    state = model.state_dict()
    for name in [name for name in state if name.startswith(EMBEDDING + ".")]:
        del state[name]  # in place: the state's _metadata (the quantized modules' versions) must stay with it
    return state


def _embedding_class():
    """The module class, made on use (torch is imported only when a backend runs)."""
    torch = _engine()

    class TiedInt8Embedding(torch.nn.Module):
        """The token embedding read from the output projection's int8 rows: row x its per-row scale."""

        def __init__(self, projection):
            super().__init__()
            weight = projection.weight()  # qint8, one scale per output channel = per token
            self.register_buffer("rows", weight.int_repr(), persistent=False)
            self.register_buffer("scales", weight.q_per_channel_scales().float().unsqueeze(1), persistent=False)
            self.num_embeddings, self.embedding_dim = self.rows.shape

        def forward(self, ids):
            return self.rows[ids].float() * self.scales[ids]

    return TiedInt8Embedding


def full_range_activations() -> bool:
    """Whether activations may use all 8 bits (fbgemm's kernels on a VNNI CPU; 7 bits otherwise, torch's default)."""
    from whisperbench.metrics.provenance import has_vnni

    return has_vnni()


def _linear_class(full_range: bool):
    """torch.ao's dynamic int8 Linear, quantizing activations to `full_range` 8 bits or 7 (its fixed default:
    7-bit activations cost base 5 WER points on 20 test-other clips, 14.74 % against fp32's 9.74 %)."""
    torch = _engine()
    from torch.ao.nn.quantized.dynamic import Linear

    class Int8Linear(Linear):
        def forward(self, x):
            packed = self._packed_params._packed_params
            return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=not full_range).to(x.dtype)

    return Int8Linear


def _quantized_skeleton(model, full_range: bool) -> None:
    """Replace every Linear of a meta-device model with an empty dynamic int8 Linear on the CPU."""
    torch = _engine()
    linear = _linear_class(full_range)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                empty = linear(child.in_features, child.out_features, bias_=child.bias is not None, dtype=torch.qint8)
                setattr(module, child_name, empty)


def load_into(model, weights: Path) -> None:
    """Load the saved state into a meta-device skeleton of the model; the embedding reads proj_out's rows."""
    torch = _engine()
    full_range = full_range_activations()
    _quantized_skeleton(model, full_range)
    model.model.decoder.embed_tokens = torch.nn.Identity()  # rebuilt below, from the loaded projection
    model.load_state_dict(torch.load(weights, weights_only=False), assign=True)
    model.model.decoder.embed_tokens = _embedding_class()(model.proj_out)
    model.eval()


def kernels() -> dict:
    """What a run record says of the int8 kernels on this machine."""
    torch = _engine()
    bits = 8 if full_range_activations() else 7
    return {"int8_engine": torch.backends.quantized.engine, "int8_activation_bits": bits}


def _values(name: str, value):
    """(name, tensor) of each tensor a saved state entry holds: packed Linear params are (weight, bias)."""
    import torch

    if isinstance(value, tuple):
        for index, item in enumerate(value):
            yield from _values(f"{name}.{index}", item)
    elif isinstance(value, torch.Tensor):
        yield name, value


def stored_tensors(weights: Path) -> list:
    """The tensors the file stores: int8 weights, their per-channel scales and zero points, float tensors."""
    from whisperbench.metrics import sizes

    torch = _engine()
    state = torch.load(weights, weights_only=False)
    tensors = []
    for name, value in (leaf for key, entry in state.items() for leaf in _values(key, entry)):
        if not value.is_quantized:
            tensors.append(_stored(name, value, weights.name, scales=name.endswith(("scale", "zero_point"))))
            continue
        tensors.append(sizes.StoredTensor(name, "int8", tuple(value.shape), value.numel(), weights.name))
        # per output channel: a float64 scale and an int64 zero point each, as torch serializes them
        tensors.append(_stored(f"{name}.scales", value.q_per_channel_scales(), weights.name, scales=True))
        tensors.append(_stored(f"{name}.zero_points", value.q_per_channel_zero_points(), weights.name, scales=True))
    return tensors


def _stored(name: str, value, file: str, scales: bool):
    from whisperbench.metrics import sizes

    dtype = str(value.dtype).removeprefix("torch.")
    return sizes.StoredTensor(name, dtype, tuple(value.shape), value.numel() * value.element_size(), file, scales)
