"""Whisper as two ONNX graphs, and the precision recipes that rewrite them.

* `encoder.onnx`: input_features → encoder_hidden_states plus every decoder layer's cross-attention
  keys/values (computed once per utterance, as ONNX Runtime's own Whisper export does).
* `decoder.onnx`: one token step with the self-attention cache: input_ids [batch, 1], past_key_i /
  past_value_i [batch, heads, past, head_dim] (past may be 0), cross_key_i [batch, heads, head_dim,
  frames] (transposed by the encoder, see `layout.keys_frames_last`) / cross_value_i →
  logits, present_key_i / present_value_i. One graph for every step, so there is no `If`
  subgraph for the quantizers to miss and no duplicated weights.

Both graphs take any batch size (the accuracy pass decodes batches; timing runs batch 1).

Exported with `torch.onnx` (dynamo) from the transformers model: optimum-onnx pins transformers < 5.
"""

from __future__ import annotations

import math
from pathlib import Path

from whisperbench.backends.onnxruntime import layout

ENCODER = "encoder.onnx"
DECODER = "decoder.onnx"
GRAPHS = (ENCODER, DECODER)
OPSET = 18
# Above this many bytes of weights a graph must keep its tensors in an external .data file (protobuf limit 2 GB).
EXTERNAL_DATA_BYTES = 1_800_000_000


def _wrappers(model):
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    layers = model.model.decoder.layers

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_features):
            hidden = self.model.model.encoder(input_features).last_hidden_state
            outputs = [hidden]
            for layer in layers:
                attention = layer.encoder_attn
                shape = (hidden.shape[0], -1, attention.num_heads, attention.head_dim)
                outputs.append(attention.k_proj(hidden).view(shape).transpose(1, 2))
                outputs.append(attention.v_proj(hidden).view(shape).transpose(1, 2))
            return tuple(outputs)

    class DecoderStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, past_keys, past_values, cross_keys, cross_values):
            # transformers 5 takes only Cache objects: rebuild one from the flat tensors.
            self_cache, cross_cache = DynamicCache(), DynamicCache()
            for index in range(len(layers)):
                self_cache.update(past_keys[index], past_values[index], index)
                cross_cache.update(cross_keys[index], cross_values[index], index)
            past_length = past_keys[0].shape[2]
            positions = (torch.arange(input_ids.shape[1]) + past_length).unsqueeze(0)
            output = self.model.model.decoder(
                input_ids=input_ids,
                encoder_hidden_states=cross_keys[0],
                past_key_values=EncoderDecoderCache(self_cache, cross_cache),
                position_ids=positions,
                use_cache=True,
            )
            cache = output.past_key_values.self_attention_cache
            logits = self.model.proj_out(output.last_hidden_state)
            return (logits, *[layer.keys for layer in cache.layers], *[layer.values for layer in cache.layers])

    return Encoder().eval(), DecoderStep().eval()


def io_names(n_layers: int) -> dict[str, list[str]]:
    per_layer = range(n_layers)
    return {
        "encoder_out": ["encoder_hidden_states"]
        + [f"cross_{kind}_{i}" for i in per_layer for kind in ("key", "value")],
        "decoder_in": ["input_ids"]
        + [f"past_key_{i}" for i in per_layer]
        + [f"past_value_{i}" for i in per_layer]
        + [f"cross_key_{i}" for i in per_layer]
        + [f"cross_value_{i}" for i in per_layer],
        "decoder_out": ["logits"] + [f"present_key_{i}" for i in per_layer] + [f"present_value_{i}" for i in per_layer],
    }


def export(model, output_dir: Path, opset: int = OPSET) -> None:
    """Write encoder.onnx and decoder.onnx for an fp32 WhisperForConditionalGeneration."""
    import torch

    config = model.config
    n_layers, heads = config.decoder_layers, config.decoder_attention_heads
    head_dim = config.d_model // heads
    names = io_names(n_layers)
    external = sum(p.numel() for p in model.parameters()) * 4 > EXTERNAL_DATA_BYTES
    encoder, decoder = _wrappers(model)
    # Example batch of 2: torch.export specializes a dimension whose example size is 1.
    features = torch.zeros(2, config.num_mel_bins, 2 * config.max_source_positions)
    frames = config.max_source_positions

    # Distinct tensors for every input: torch.export wires aliased example inputs to one graph input.
    def examples(length):
        return [torch.randn(2, heads, length, head_dim) for _ in range(n_layers)]

    batch = torch.export.Dim("batch", min=1, max=1024)
    past = torch.export.Dim("past", min=0, max=config.max_target_positions - 1)
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            (features,),
            output_dir / ENCODER,
            input_names=["input_features"],
            output_names=names["encoder_out"],
            dynamo=True,
            dynamic_shapes={"input_features": {0: batch}},
            opset_version=opset,
            external_data=external,
            verbose=False,
        )
        torch.onnx.export(
            decoder,
            (torch.zeros(2, 1, dtype=torch.long), examples(3), examples(3), examples(frames), examples(frames)),
            output_dir / DECODER,
            input_names=names["decoder_in"],
            output_names=names["decoder_out"],
            dynamo=True,
            dynamic_shapes={
                "input_ids": {0: batch},
                "past_keys": [{0: batch, 2: past}] * n_layers,
                "past_values": [{0: batch, 2: past}] * n_layers,
                "cross_keys": [{0: batch}] * n_layers,
                "cross_values": [{0: batch}] * n_layers,
            },
            opset_version=opset,
            external_data=external,
            verbose=False,
        )
    layout.keys_frames_last_in(output_dir / ENCODER, output_dir / DECODER)


def float_only_nodes(model) -> list[str]:
    """Nodes that stay in float in the INT8 recipes.

    * MatMuls with no constant input: attention scores and context (activation × activation),
      whose dynamic ranges per utterance make int8 lose the most accuracy;
    * Gathers of the position tables (encoder `embed_positions`): tiny, and every frame uses them.
    """
    initializers = {tensor.name for tensor in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        constant_inputs = [name for name in node.input if name in initializers]
        attention = node.op_type == "MatMul" and not constant_inputs
        positions = node.op_type in ("Gather", "GatherND") and any("position" in name for name in constant_inputs)
        if attention or positions:
            keep.append(node.name)
    return keep


def mlp_down_projections(model) -> list[str]:
    """MatMuls whose constant weight has more input than output features: the MLP `fc2` layers.

    Their inputs are GELU outputs with a few very large activations; one static per-tensor uint8 range
    over them leaves the ordinary values a single step, and tiny.en's encoder then hallucinated
    (test-other WER 120 %; 13.7 % with these layers in float, fp32 13.4 %).
    """
    weights = {tensor.name: tensor.dims for tensor in model.graph.initializer}
    down = []
    for node in model.graph.node:
        dims = [weights[name] for name in node.input if name in weights]
        if node.op_type == "MatMul" and dims and len(dims[0]) == 2 and dims[0][0] > dims[0][1]:
            down.append(node.name)
    return down


def load(path: Path):
    import onnx

    return onnx.load(str(path))


def external_data_path(path: Path) -> Path:
    """Where a graph past EXTERNAL_DATA_BYTES keeps its weights: beside it, as <name>.data."""
    return path.with_name(path.name + ".data")


def has_external_data(path: Path) -> bool:
    return external_data_path(Path(path)).is_file()


def save(model, path: Path) -> None:
    import onnx

    large = sum(len(tensor.raw_data) for tensor in model.graph.initializer) > EXTERNAL_DATA_BYTES
    path.unlink(missing_ok=True)  # onnx appends to an existing data file
    external_data_path(path).unlink(missing_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=large, location=external_data_path(path).name)


def stored_tensors(artifact_dir: Path) -> list:
    """Every initializer of the artifact's graphs, as stored (inline or in the external data file)."""
    import re

    import onnx

    from whisperbench.metrics import sizes

    artifact_dir = Path(artifact_dir)
    tensors = []
    for path in sorted(artifact_dir.glob("*.onnx")):
        for initializer in onnx.load(str(path), load_external_data=False).graph.initializer:
            external = {entry.key: entry.value for entry in initializer.external_data}
            dtype = onnx.TensorProto.DataType.Name(initializer.data_type).lower()
            nbytes = int(external["length"]) if "length" in external else len(initializer.raw_data)
            if not nbytes:  # values in a typed field (small constants): count them at their element size
                nbytes = onnx.helper.tensor_dtype_to_np_dtype(initializer.data_type).itemsize * math.prod(
                    initializer.dims
                )
            tensors.append(
                sizes.StoredTensor(
                    initializer.name,
                    dtype,
                    tuple(initializer.dims),
                    nbytes,
                    external.get("location", path.name),
                    scales=bool(re.search(r"scale|zero_point|_zp\b", initializer.name)),
                )
            )
    return tensors
