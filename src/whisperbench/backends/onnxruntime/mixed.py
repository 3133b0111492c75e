"""Mixed int4/int8 on MatMulNBits: each quantized MatMul / Gather at the bits its tensor group was given.

The exporter names most weight initializers `val_<n>`, so the export records which HF parameter each 2-D
initializer holds (`weights_map.json`, matched by value, as is or transposed); the recipe reads the mix
(`mixed/plan.py`) per HF module, quantizes the high-width nodes with `MatMulNBitsQuantizer(bits=8)`, then the
rest with `bits=4` (same symmetric blocks), and shares the tied embedding as the int4 recipe does.
Convolutions stay fp32 as in the uniform recipe; the encoder's position table is a Gather, which the quantizer
stores at 4 bits only (`mixed_widths` keeps it there), so only MatMuls are ever at 8.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

WEIGHTS_MAP = "weights_map.json"
EMBEDDING_MODULE = "model.decoder.embed_tokens"
_OP_AXES = (("MatMul", 0), ("Gather", 1))


def _digest(array) -> str:
    import numpy as np

    return hashlib.sha1(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def write_weights_map(model, export_dir: Path, graph_names: tuple[str, ...]) -> None:
    """{graph: {initializer: HF parameter}} for every 2-D+ initializer equal to a parameter (or its transpose)."""
    from onnx import numpy_helper

    from whisperbench.backends.onnxruntime import graphs

    by_value = {}
    for name, tensor in reversed(list(model.state_dict().items())):  # the embedding's name wins over proj_out's
        if tensor.dim() >= 2:
            array = tensor.detach().float().numpy()
            by_value[_digest(array)] = name
            by_value.setdefault(_digest(array.reshape(array.shape[0], -1).T), name)
    mapping = {}
    for graph_name in graph_names:
        graph = graphs.load(export_dir / graph_name)
        found = {}
        for initializer in graph.graph.initializer:
            if len(initializer.dims) >= 2 and (param := by_value.get(_digest(numpy_helper.to_array(initializer)))):
                found[initializer.name] = param
        mapping[graph_name] = found
    (export_dir / WEIGHTS_MAP).write_text(json.dumps(mapping, indent=1, sort_keys=True) + "\n")


def _module(param: str) -> str:
    module = param.rsplit(".", 1)[0]
    return EMBEDDING_MODULE if module == "proj_out" else module


def high_nodes(model, weights: dict[str, str], tied: dict[str, str], module_bits: dict[str, int]) -> list[str]:
    """The MatMul nodes whose weight belongs to a module given 8 bits (Gathers are 4-bit only: `mixed_widths`)."""
    high = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        weight = tied.get(node.input[1], node.input[1])  # the untied projection holds the embedding table's values
        if weight in weights and module_bits.get(_module(weights[weight])) == 8:
            high.append(node.name)
    return high


def quantize(model, high: list[str], embeddings: list[str], options):
    """Two passes of MatMulNBitsQuantizer: `high` nodes at 8 bits, then every other MatMul / Gather at 4."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    candidates = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gather") and n.name not in high]
    for bits, exclude in ((8, candidates + embeddings), (4, embeddings)):
        quantizer = MatMulNBitsQuantizer(
            model,
            bits=bits,
            block_size=options.int4_block_size,
            is_symmetric=True,  # what tied.share reads: no zero points
            accuracy_level=options.int4_accuracy_level,
            nodes_to_exclude=exclude,
            op_types_to_quantize=("MatMul", "Gather"),
            quant_axes=_OP_AXES,
        )
        quantizer.process()
        model = quantizer.model.model
    return model


def read_weights_map(export_dir: Path) -> dict:
    path = export_dir / WEIGHTS_MAP
    if not path.is_file():
        raise ValueError(f"{path}: missing (an export from before mixed precisions); delete {export_dir} and re-run")
    return json.loads(path.read_text())
