"""One Core ML precision from the export: fp32 as is, fp16 re-converted, the rest compressed from fp16.

A mixed precision compresses each weight const with its group's width (mixed/plan.py) through coremltools'
per-op configs: the base recipe's config for the 4-bit groups, int8 per channel (int4 mixes) or an 8-bit
palette (pal4 mixes) for the 8-bit ones, none for the groups the mixes keep fp16 (the convolutions)."""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

from whisperbench.backends.base import BuildContext
from whisperbench.backends.coreml import MIX_BASE, graphs, weights
from whisperbench.mixed import plan

PALETTE_BITS = {"pal4": 4, "pal6": 6}
_HIGH_RECIPE = {"int4": "int8 symmetric per channel", "pal4": "8-bit k-means palettes"}


def _fp16(source_dir: Path, output_dir: Path, deployment_target: str) -> None:
    import torch
    from transformers import WhisperConfig

    traced = {part: torch.jit.load(str(source_dir / f"{part}.pt")) for part in ("encoder", "decoder")}
    graphs.convert(traced, WhisperConfig.from_pretrained(source_dir), output_dir, "float16", deployment_target)


def _config(precision: str, options):
    import coremltools.optimize.coreml as cto

    if precision == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return cto.linear_quantize_weights, op, "linear_quantize_weights int8 symmetric per channel"
    if precision == "int4":
        op = cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=options.int4_block_size
        )
        return (
            cto.linear_quantize_weights,
            op,
            f"linear_quantize_weights int4 symmetric, blocks of {options.int4_block_size}",
        )
    grouped = options.palettization_granularity == "per_grouped_channel"
    where = f"groups of {options.palettization_group_size} channels" if grouped else "one table per tensor"
    recipe = f"palettize_weights k-means {PALETTE_BITS[precision]}-bit, {where}"
    return cto.palettize_weights, _palette(precision, options), recipe


def _palette(precision: str, options, channel_axis: int | None = None, nbits: int | None = None):
    import coremltools.optimize.coreml as cto

    grouped = options.palettization_granularity == "per_grouped_channel"
    return cto.OpPalettizerConfig(
        mode="kmeans",
        nbits=nbits or PALETTE_BITS[precision],
        granularity=options.palettization_granularity,
        channel_axis=channel_axis,
        **({"group_size": options.palettization_group_size} if grouped else {}),
    )


def _by_input_channels(package: Path, precision: str, options) -> dict:
    """Grouped palettes for weights whose output channels the group size does not divide (base's 51865-token
    embedding, the 1500 encoder positions): group along the input channels instead of leaving them float."""
    if precision not in PALETTE_BITS or options.palettization_granularity != "per_grouped_channel":
        return {}
    group, configs = options.palettization_group_size, {}
    for op in weights.program(package).functions["main"].operations:
        value = op.outputs[0].val if op.op_type == "const" else None
        large = isinstance(value, np.ndarray) and value.ndim >= 2 and value.size > weights.WEIGHT_THRESHOLD
        if large and value.shape[0] % group and not value.shape[1] % group:
            configs[op.name] = _palette(precision, options, channel_axis=1)
    return configs


def _high(precision: str, options, channel_axis: int | None):
    """The 8-bit config of a mix's promoted weight (on the same channel axis as its 4-bit config)."""
    import coremltools.optimize.coreml as cto

    if precision in PALETTE_BITS:
        return _palette(precision, options, channel_axis, nbits=8)
    return cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")


def _mixed_configs(package: Path, precision: str, options, module_bits: dict, by_input: dict) -> dict:
    """{const op name: its config} for every weight const of a mix's group: 8-bit for the promoted groups,
    None (left fp16) for the fixed ones; the 4-bit groups keep the global (or by-input-channel) config."""
    names = json.loads((package.parent / "weight_names.json").read_text())
    configs = {}
    for op in weights.program(package).functions["main"].operations:
        param = names.get(weights.base_name(op.name)) if op.op_type == "const" else None
        bits = module_bits.get(param.rsplit(".", 1)[0]) if param else None
        if bits == 8:
            axis = by_input[op.name].channel_axis if op.name in by_input else None
            configs[op.name] = _high(precision, options, axis)
        elif bits is not None and bits > 8:
            configs[op.name] = None
    return configs


def _compress(fp16_dir: Path, precision: str, options, output_dir: Path, module_bits: dict | None) -> str:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    compress, op_config, recipe = _config(precision, options)
    for package in graphs.PACKAGES:
        model = ct.models.MLModel(str(fp16_dir / package), skip_model_load=True)
        by_input = _by_input_channels(fp16_dir / package, precision, options)
        if module_bits is not None:
            by_input |= _mixed_configs(fp16_dir / package, precision, options, module_bits, by_input)
        config = cto.OptimizationConfig(global_config=op_config, op_name_configs=by_input or None)
        compress(model, config).save(str(output_dir / package))
    return recipe


def _compressed(source_dir: Path, precision: str, options, output_dir: Path, context: BuildContext):
    """A compressed precision's packages, from the fp16 program: (recipe, the mix's record or None)."""
    mix = None
    if precision in MIX_BASE:
        mix = plan.choose_for_export(__package__, precision, options, source_dir, context.sensitivity)
    base = MIX_BASE.get(precision, precision)
    with tempfile.TemporaryDirectory(prefix="whisperbench-coreml-") as scratch:
        _fp16(source_dir, Path(scratch), options.minimum_deployment_target)
        shutil.copy2(source_dir / "weight_names.json", Path(scratch) / "weight_names.json")
        recipe = _compress(Path(scratch), base, options, output_dir, mix.pop("module_bits") if mix else None)
    if mix:
        recipe += f"; {_HIGH_RECIPE[base]} for the mix's 8-bit groups, convolutions fp16"
    return recipe + " (from the fp16 program)", mix


def build(source_dir: Path, precision: str, options, output_dir: Path, context: BuildContext) -> dict:
    import torch

    torch.set_num_threads(context.threads)
    mix = None
    if precision == "fp32":
        for package in graphs.PACKAGES:
            shutil.copytree(source_dir / package, output_dir / package)
        recipe = "coremltools convert, fp32 compute precision"
    elif precision == "fp16":
        _fp16(source_dir, output_dir, options.minimum_deployment_target)
        recipe = "coremltools convert, fp16 compute precision (weights stored in fp16)"
    else:
        recipe, mix = _compressed(source_dir, precision, options, output_dir, context)
    names = json.loads((output_dir / "weight_names.json").read_text())
    tensors, storage = weights.state_dict([output_dir / p for p in graphs.PACKAGES], names)
    stored = sorted(set(storage.values()))
    mixed = {"mix": mix, "calibration_ids": mix.pop("calibration_ids", None)} if mix else {}
    return {k: v for k, v in mixed.items() if v is not None} | {
        "library": f"coremltools {version('coremltools')}",
        "packages_bytes": sum(
            f.stat().st_size for p in graphs.PACKAGES for f in (output_dir / p).rglob("*") if f.is_file()
        ),
        "recipe": recipe,
        "minimum_deployment_target": options.minimum_deployment_target,
        "weights_stored_as": {how: sum(1 for s in storage.values() if s == how) for how in stored},
        "kept_float": weights.kept_float(storage, tensors) if precision not in ("fp32", "fp16") else [],
    }
