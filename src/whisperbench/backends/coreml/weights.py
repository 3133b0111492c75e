"""Read a Core ML package's weights back as dense float arrays, named as the HF model's parameters.

Works on Linux (no `predict` needed): the package's ML Program is loaded with coremltools' milproto
reader, every `const` weight is taken as stored, and every compressed weight (`constexpr_lut_to_dense`
for palettization, `constexpr_blockwise_shift_scale` for linear int8/int4) is materialized by
coremltools itself, i.e. exactly the dense weight the device decompresses. Const names are the
traced modules' paths (`decoder_layers_0_fc1_weight`), with a suffix after compression or a cast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# What coremltools appends to a weight's name when it compresses or casts it.
SUFFIXES = ("_palettized", "_quantized", "_to_fp16")
# Weights (2-D and up) no larger than this stay float in every recipe: coremltools' default threshold.
WEIGHT_THRESHOLD = 2048


def program(package: Path):
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    model = ct.models.MLModel(str(package), skip_model_load=True)
    spec = model.get_spec()
    return load(spec, specification_version=spec.specificationVersion, file_weights_dir=model.weights_dir)


def base_name(name: str) -> str:
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def read(package: Path) -> dict[str, tuple[str, np.ndarray]]:
    """{weight name: (how it is stored, dense float32 array)} of every weight in the package."""
    weights = {}
    for op in program(package).functions["main"].operations:
        if op.op_type == "const":
            value = op.outputs[0].val
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim >= 1:
                weights.setdefault(base_name(op.name), ("float", value.astype(np.float32)))
        elif op.op_type.startswith("constexpr_") and not _feeds_constexpr(op):
            weights[base_name(op.name)] = (op.op_type, np.asarray(op.materialized_val_inference(), np.float32))
    return weights


def _feeds_constexpr(op) -> bool:
    """True for a constant that only feeds compressed weights (a palette, its scales): part of a weight."""
    users = op.outputs[0].child_ops
    return bool(users) and all(user.op_type.startswith("constexpr_") for user in users)


def const_names(model) -> dict[str, str]:
    """{const name in the programs: HF parameter name} for every parameter the two programs use."""
    from whisperbench.backends.coreml.graphs import wrappers

    hf_names = {}
    for name, parameter in model.named_parameters():  # the tied output projection comes after the embedding
        hf_names.setdefault(id(parameter), name)
    names = {}
    for wrapper in wrappers(model):
        for name, parameter in wrapper.named_parameters():
            names[name.replace(".", "_")] = hf_names[id(parameter)]
    return names


def state_dict(packages: list[Path], names: dict[str, str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The HF state dict the packages hold, and how each weight was stored (float or its constexpr op)."""
    tensors, storage = {}, {}
    for package in packages:
        for const, (stored, value) in read(package).items():
            if const in names:
                tensors[names[const]], storage[names[const]] = value, stored
    missing = sorted(set(names.values()) - set(tensors))
    if missing:
        raise ValueError(f"{len(missing)} weight(s) not found in the Core ML programs, e.g. {missing[0]}")
    return tensors, storage


def kept_float(storage: dict[str, str], tensors: dict[str, np.ndarray]) -> list[str]:
    """Weights large enough to compress that the recipe left float (e.g. a conv the block size cannot cover)."""
    large = {name for name, value in tensors.items() if value.ndim >= 2 and value.size > WEIGHT_THRESHOLD}
    return sorted(name for name, how in storage.items() if how == "float" and name in large)


def _stored(name: str, var, package: str, scales: bool):
    """A program value as the package's weight file stores it (sub-byte types packed)."""
    import re

    from coremltools.converters.mil.mil import types

    from whisperbench.metrics import sizes

    dtype = types.builtin_to_string(var.dtype)
    value = np.asarray(var.val)
    bits = int(re.search(r"\d+", dtype).group()) if re.search(r"\d+", dtype) else value.dtype.itemsize * 8
    return sizes.StoredTensor(name, dtype.replace("fp", "float"), value.shape, value.size * bits // 8, package, scales)


def stored_tensors(artifact_dir: Path) -> list:
    """Every weight of the artifact's packages: float consts, and each compressed weight's payload and tables."""
    from whisperbench.backends.coreml.graphs import PACKAGES

    tensors = []
    for package in PACKAGES:
        for op in program(Path(artifact_dir) / package).functions["main"].operations:
            if op.op_type == "const":
                value = op.outputs[0].val
                weight = isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim >= 1
                if weight and not _feeds_constexpr(op):
                    tensors.append(_stored(op.name, op.outputs[0], package, scales=False))
            elif op.op_type.startswith("constexpr_"):
                for role, var in op.inputs.items():
                    if var.val is not None and np.asarray(var.val).ndim >= 1:
                        payload = role in ("indices", "data", "quantized_data") and not _feeds_constexpr(op)
                        tensors.append(_stored(f"{op.name}.{role}", var, package, scales=not payload))
    return tensors
