"""Whisper's tied token embedding / output projection, stored once in the quantized graphs.

The exporter writes the projection as Transpose(embedding table). The quantizers only quantize a MatMul
whose weight is an initializer, so `untie` first gives the projection its own (transposed) copy; after
quantization `share` points the embedding at the projection's quantized weights and drops the float
table, so one matrix of 51,864 × d is stored once, at the recipe's bits:

* int4 (`MatMulNBits`: B [vocab, blocks, block bytes], low nibble first, zero point 8, scales [vocab,
  blocks]): `GatherBlockQuantized` (ONNX Runtime ≥ 1.22) reads the same B, quantize axis 2, one block
  per (row, block) pair, and a Reshape joins the blocks into the row;
* int8 (`MatMulInteger`: W [d, vocab] int8, symmetric, one scale per vocabulary column): Gather of the
  token's column, Cast, times its scale — the embedding row quantized per row in int8.
"""

from __future__ import annotations


def untie(model) -> dict[str, str]:
    """Replace Transpose(initializer) by a transposed initializer; returns {new name: table it copies}."""
    from onnx import numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    created = {}
    for node in list(model.graph.node):
        if node.op_type != "Transpose" or node.input[0] not in initializers:
            continue
        array = numpy_helper.to_array(initializers[node.input[0]])
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        transposed = array.transpose(perm) if perm else array.T
        model.graph.initializer.append(numpy_helper.from_array(transposed.copy(), node.output[0]))
        model.graph.node.remove(node)
        created[node.output[0]] = node.input[0]
    return created


def embedding_gathers(model, tied: dict[str, str]) -> list[str]:
    """The Gather nodes that read a tied table: kept out of the quantizers, `share` replaces them."""
    tables = set(tied.values())
    return [node.name for node in model.graph.node if node.op_type == "Gather" and node.input[0] in tables]


def share(model, tied: dict[str, str]) -> list[str]:
    """Point each tied table's Gather at the quantized projection; returns how each was shared."""
    shared = []
    for transposed, table in tied.items():
        gather = next(n for n in model.graph.node if n.op_type == "Gather" and n.input[0] == table)
        projection = _projection(model, transposed)
        if projection.op_type == "MatMulNBits":
            nodes, constants = _from_nbits(gather, projection)
        else:
            nodes, constants = _from_integer(model, gather, projection, transposed)
        index = list(model.graph.node).index(gather)
        model.graph.node.remove(gather)
        for offset, node in enumerate(nodes):
            model.graph.node.insert(index + offset, node)
        model.graph.initializer.extend(constants)
        if not any(table in node.input for node in model.graph.node):
            model.graph.initializer.remove(next(t for t in model.graph.initializer if t.name == table))
        shared.append(f"{gather.output[0]} reads {projection.op_type} {projection.input[1]}")
    return shared


def _projection(model, transposed: str):
    """The quantized MatMul that replaced the projection reading `transposed` (the quantizers' names)."""
    weights = {f"{transposed}_Q{bits}": "MatMulNBits" for bits in (4, 8)} | {f"{transposed}_quantized": "MatMulInteger"}
    for node in model.graph.node:
        if len(node.input) > 1 and weights.get(node.input[1]) == node.op_type:
            return node
    raise ValueError(f"no MatMulNBits or MatMulInteger reads {transposed}'s quantized weight: cannot share it")


def _attribute(node, name: str, default=None):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _from_nbits(gather, projection) -> tuple[list, list]:
    import numpy as np
    from onnx import helper, numpy_helper

    if len(projection.input) > 3 and projection.input[3]:
        raise ValueError(f"{projection.name}: asymmetric MatMulNBits (zero points) is not shared")
    name = gather.name or gather.output[0]
    n, k = _attribute(projection, "N"), _attribute(projection, "K")
    block = _attribute(projection, "block_size")
    scales = f"{name}_block_scales"
    blocks = f"{name}_blocks"
    constants = [
        numpy_helper.from_array(np.array([n, -(-k // block), 1], np.int64), f"{scales}_shape"),
        numpy_helper.from_array(np.array([0] * 2 + [-1], np.int64), f"{name}_row_shape"),
    ]
    nodes = [
        helper.make_node("Reshape", [projection.input[2], f"{scales}_shape"], [scales], name=f"{name}_scales"),
        helper.make_node(
            "GatherBlockQuantized",
            [projection.input[1], gather.input[1], scales],
            [blocks],
            name=f"{name}_shared",
            domain="com.microsoft",
            gather_axis=0,
            quantize_axis=2,
            block_size=block,
            bits=_attribute(projection, "bits", 4),
        ),
        helper.make_node("Reshape", [blocks, f"{name}_row_shape"], [gather.output[0]], name=f"{name}_rows"),
    ]
    return nodes, constants


def _from_integer(model, gather, projection, transposed: str) -> tuple[list, list]:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    zero_points = numpy_helper.to_array(initializers[projection.input[3]])
    if zero_points.any() or f"{transposed}_scale" not in initializers:
        raise ValueError(f"{projection.name}: only symmetric int8 weights with per-column scales are shared")
    name, ids = gather.name or gather.output[0], gather.input[1]
    columns, scale = f"{name}_columns", f"{name}_scale"
    nodes = [
        helper.make_node("Gather", [projection.input[1], ids], [columns], name=f"{name}_shared", axis=1),
        helper.make_node("Cast", [columns], [f"{columns}_float"], name=f"{name}_cast", to=TensorProto.FLOAT),
        # [d, batch, tokens] → [batch, tokens, d] (input_ids is [batch, tokens])
        helper.make_node("Transpose", [f"{columns}_float"], [f"{name}_rows"], name=f"{name}_rows", perm=[1, 2, 0]),
        helper.make_node("Gather", [f"{transposed}_scale", ids], [scale], name=f"{name}_scales", axis=0),
        helper.make_node("Unsqueeze", [scale, f"{name}_last_axis"], [f"{scale}_column"], name=f"{name}_unsqueeze"),
        helper.make_node("Mul", [f"{name}_rows", f"{scale}_column"], [gather.output[0]], name=f"{name}_dequantize"),
    ]
    return nodes, [numpy_helper.from_array(np.array([-1], np.int64), f"{name}_last_axis")]
