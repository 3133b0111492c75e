"""Each precision's artifact: built from the fp32 HF model (`prepare`), read back (`load_model`), and the
tensors its files store (`stored_tensors`)."""

from __future__ import annotations

import json
from pathlib import Path

from whisperbench.backends.base import BuildContext
from whisperbench.backends.pytorch import int4, int8

FLOAT_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_KEEP_FLOAT = ("proj_out",)
_LIBRARY = {"int8": "torch", "int8_torchao": "torchao", "int4": "torch", "int4_quanto": "optimum-quanto"}
INT4_LAYOUT = ("int4", "int4_mixed", "int4_fixedmix")  # the int4 file, some Linears at 8 bits in the mixes


def _keep_linear(module, name: str) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear) and not name.endswith(_KEEP_FLOAT)


def _int8_config():
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return Int8DynamicActivationInt8WeightConfig()


def _save_processor(hf_dir: Path, output_dir: Path) -> None:
    from transformers import WhisperProcessor

    WhisperProcessor.from_pretrained(hf_dir).save_pretrained(output_dir)


def _library_version(precision: str) -> str:
    from importlib.metadata import version

    package = _LIBRARY.get(precision, "torch")
    return f"{package} {version(package)}"


def prepare(hf_dir: Path, precision: str, options, output_dir: Path, context: BuildContext) -> dict:
    """Convert/quantize the fp32 HF model and save what `load` reads back (`context` is not needed here)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32).eval()
    _save_processor(hf_dir, output_dir)
    if precision in FLOAT_DTYPES:
        model.to(getattr(torch, FLOAT_DTYPES[precision])).save_pretrained(output_dir)
    elif precision == "int8":
        int8.quantize(model)
        model.config.save_pretrained(output_dir)
        model.generation_config.save_pretrained(output_dir)
        torch.save(int8.state_to_save(model), output_dir / int8.WEIGHTS)
        return {"library": _library_version(precision), "recipe": int8.RECIPE}
    elif precision == "int8_torchao":
        from torchao.quantization import quantize_

        quantize_(model, _int8_config(), filter_fn=_keep_linear)
        model.config.save_pretrained(output_dir)
        model.generation_config.save_pretrained(output_dir)
        torch.save(model.state_dict(), output_dir / "model_int8.pt")
    elif precision == "int4":
        int4.save(model, output_dir, options.int4_group_size)
        model.config.save_pretrained(output_dir)
        model.generation_config.save_pretrained(output_dir)
        return {"library": _library_version(precision), "recipe": int4.recipe(options.int4_group_size)}
    elif precision in INT4_LAYOUT:
        return _mixed(model, precision, options, output_dir, context)
    elif precision == "int4_quanto":
        from optimum.quanto import freeze, qint4, quantization_map, quantize
        from safetensors.torch import save_file

        quantize(model, weights=qint4, exclude=list(_KEEP_FLOAT))
        freeze(model)
        model.config.save_pretrained(output_dir)
        model.generation_config.save_pretrained(output_dir)
        state = {name: tensor.contiguous() for name, tensor in model.state_dict().items() if name != "proj_out.weight"}
        save_file(state, output_dir / "model_int4.safetensors")
        (output_dir / "quantization_map.json").write_text(json.dumps(quantization_map(model)))
    else:
        raise ValueError(f"pytorch cannot build precision {precision}")
    return {"library": _library_version(precision), "kept_in_float": list(_KEEP_FLOAT)}


def _mixed(model, precision: str, options, output_dir: Path, context: BuildContext) -> dict:
    """int4 with the mix's high-width groups at int8 per output feature (torch's int8 weight-only GEMM)."""
    import sys

    from whisperbench.mixed import plan

    backend = sys.modules["whisperbench.backends.pytorch"]
    mix = plan.choose(backend, precision, options, model.config.to_dict(), context.sensitivity)
    # the tied embedding's bits go to proj_out, whose rows the embedding reads (int4.load_into)
    int8_linears = {
        int4.PROJECTION if name == int4.EMBEDDING else name
        for name, bits in mix.pop("module_bits").items()
        if bits == 8
    }
    int4.save(model, output_dir, options.int4_group_size, frozenset(int8_linears))
    model.config.save_pretrained(output_dir)
    model.generation_config.save_pretrained(output_dir)
    calibration = {"calibration_ids": mix.pop("calibration_ids")} if "calibration_ids" in mix else {}
    return {
        "library": _library_version("int4"),
        "recipe": f"{int4.recipe(options.int4_group_size)}; the mix's high-width groups int8 per output feature "
        "(_weight_int8pack_mm)",
        "mix": mix,
    } | calibration


def load_model(artifact_dir: Path, precision: str, options):
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    if precision in FLOAT_DTYPES:
        dtype = getattr(torch, FLOAT_DTYPES[precision])
        return WhisperForConditionalGeneration.from_pretrained(
            artifact_dir, dtype=dtype, attn_implementation=options.attn_implementation
        )
    config = WhisperConfig.from_pretrained(artifact_dir)
    config._attn_implementation = options.attn_implementation
    with torch.device("meta"):  # a skeleton without memory: the saved quantized tensors are assigned into it
        model = WhisperForConditionalGeneration(config).eval()
    if precision == "int8":
        int8.load_into(model, artifact_dir / int8.WEIGHTS)
        return _with_generation_config(model, artifact_dir)
    if precision in INT4_LAYOUT:
        int4.load_into(model, artifact_dir)
        return _with_generation_config(model, artifact_dir)
    if precision == "int8_torchao":
        state = torch.load(artifact_dir / "model_int8.pt", weights_only=False)
        model.load_state_dict(state, assign=True)
    else:
        from optimum.quanto import requantize
        from safetensors.torch import load_file

        quant_map = json.loads((artifact_dir / "quantization_map.json").read_text())
        requantize(model, load_file(artifact_dir / "model_int4.safetensors"), quant_map, device=torch.device("cpu"))
    model.tie_weights()
    return _with_generation_config(model, artifact_dir)


def _with_generation_config(model, artifact_dir: Path):
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig.from_pretrained(artifact_dir)
    return model


def _leaves(name: str, tensor):
    """(name, plain tensor) of a tensor and of the inner tensors of a quantized tensor subclass (torchao)."""
    import torch

    if type(tensor) in (torch.Tensor, torch.nn.Parameter):
        yield name, tensor
        return
    inner, _ = tensor.__tensor_flatten__()
    for attribute in inner:
        yield from _leaves(f"{name}.{attribute}", getattr(tensor, attribute))


def stored_tensors(artifact_dir: Path) -> list:
    """The tensors the artifact's weight file stores (tied tensors once, as torch.save writes them)."""
    import torch

    from whisperbench.metrics import sizes

    artifact_dir = Path(artifact_dir)
    if (artifact_dir / int8.WEIGHTS).is_file():
        return int8.stored_tensors(artifact_dir / int8.WEIGHTS)
    if not (artifact_dir / "model_int8.pt").is_file():
        files = sorted(artifact_dir.glob("*.safetensors"))
        return [tensor for path in files for tensor in sizes.safetensors_tensors(path, artifact_dir)]
    state = torch.load(artifact_dir / "model_int8.pt", weights_only=False)
    tensors, storages = [], set()
    for name, value in state.items():
        for leaf_name, leaf in _leaves(name, value):
            if leaf.untyped_storage().data_ptr() in storages:
                continue
            storages.add(leaf.untyped_storage().data_ptr())
            dtype = str(leaf.dtype).removeprefix("torch.")
            tensors.append(
                sizes.StoredTensor(
                    leaf_name,
                    dtype,
                    tuple(leaf.shape),
                    leaf.untyped_storage().nbytes(),
                    "model_int8.pt",
                    scales="scale" in leaf_name or "zero_point" in leaf_name,
                )
            )
    return tensors
