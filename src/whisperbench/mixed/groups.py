"""A Whisper model's tensor groups: what a mixed recipe gives one bit width to, and what the sensitivity
pass quantizes one at a time.

Names are HF module names (`model.encoder.layers.0.fc1`); every backend maps them to its own tensors. The
tied token embedding and output projection are one group (`embedding`): one matrix, stored once.
"""

from __future__ import annotations

from dataclasses import dataclass

EMBEDDING, CONV = "embedding", "encoder.conv"
# two groups: runtimes read the two tables differently (onnxruntime: a Gather for the encoder's, which its
# quantizer takes, a GatherND for the decoder's, which it leaves in float)
ENCODER_POSITIONS, DECODER_POSITIONS = "encoder.positions", "decoder.positions"


@dataclass(frozen=True)
class Group:
    name: str
    modules: tuple[str, ...]  # HF module names whose `.weight` the group's bits apply to
    weights: int  # elements of those weight tensors
    biases: int  # elements of their biases (kept at the backend's float width)


def _linear(name: str, inputs: int, outputs: int) -> tuple[str, int, int]:
    return name, inputs * outputs, outputs


def _group(name: str, parts: list[tuple[str, int, int]]) -> Group:
    return Group(name, tuple(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts))


def _attention(prefix: str, width: int) -> list[tuple[str, int, int]]:
    # k_proj has no bias in Whisper
    return [(f"{prefix}.{p}_proj", width * width, 0 if p == "k" else width) for p in ("q", "k", "v", "out")]


def tensor_groups(config: dict) -> list[Group]:
    """The groups of a model from its config.json fields (d_model, layers, ffn dims, vocab, positions)."""
    width, vocab = config["d_model"], config["vocab_size"]
    mels = config.get("num_mel_bins", 80)
    groups = [
        _group(EMBEDDING, [("model.decoder.embed_tokens", vocab * width, 0)]),
        _group(
            CONV, [("model.encoder.conv1", mels * width * 3, width), ("model.encoder.conv2", width * width * 3, width)]
        ),
        _group(
            ENCODER_POSITIONS, [("model.encoder.embed_positions", config.get("max_source_positions", 1500) * width, 0)]
        ),
        _group(
            DECODER_POSITIONS, [("model.decoder.embed_positions", config.get("max_target_positions", 448) * width, 0)]
        ),
    ]
    for side, ffn in (("encoder", config["encoder_ffn_dim"]), ("decoder", config["decoder_ffn_dim"])):
        for layer in range(config[f"{side}_layers"]):
            prefix = f"model.{side}.layers.{layer}"
            mlp = [_linear(f"{prefix}.fc1", width, ffn), _linear(f"{prefix}.fc2", ffn, width)]
            attention = [("self_attention", "self_attn")] + (
                [("cross_attention", "encoder_attn")] if side == "decoder" else []
            )
            for label, module in attention:
                groups.append(_group(f"{side}.{layer}.{label}", _attention(f"{prefix}.{module}", width)))
            groups.append(_group(f"{side}.{layer}.mlp", mlp))
    return groups


def norm_parameters(config: dict) -> int:
    """Elements of the layer norms (weight and bias), which no recipe quantizes."""
    width = config["d_model"]
    per_layer = {"encoder": 2, "decoder": 3}
    norms = sum(per_layer[side] * config[f"{side}_layers"] for side in per_layer) + 2  # + each stack's final norm
    return norms * 2 * width


def layer_of(group: str) -> tuple[str, int] | None:
    """(stack, layer index) of a per-layer group, None for the embedding, convolutions and positions."""
    parts = group.split(".")
    return (parts[0], int(parts[1])) if len(parts) == 3 else None
