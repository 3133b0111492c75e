"""PyTorch (transformers) backend: FP32, BF16, FP16, INT8 dynamic (torchao), INT4 weight-only (optimum-quanto).

INT8 uses torchao's `Int8DynamicActivationInt8WeightConfig` on the Linear layers (the
replacement for the deprecated `torch.ao.quantization.quantize_dynamic`). INT4 uses
optimum-quanto's `qint4` weights, because torchao's INT4 configs have no CPU kernel with
torch 2.13 (they need `mslk` or CUDA). The tied output projection (`proj_out`, an alias of
the token embeddings) stays in float in both, so the tie survives.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisperbench.backends.base import (
    BackendOptions,
    BuildContext,
    Decoding,
    Hypothesis,
    Transcription,
    prompt_tokens,
)

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int4")
MAX_AUDIO_S = 30.0  # short-form decoding only: transformers' long-form path forces timestamps
_FLOAT_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_KEEP_FLOAT = ("proj_out",)
_LIBRARY = {"int8": "torchao", "int4": "optimum-quanto"}
_probe_cache: dict[str, str | None] = {}


# Peak memory of each build step (precision, or the export): (MB, bytes per parameter), the least-squares line
# over tiny, base, small, medium, large-v3-turbo, large-v3 and distil-large-v3 with random weights (where each ran:
# benchmarks/scaling.py, benchmarks/results/scaling-2026-12-03).
# A step that would need more than the machine has available is refused before it starts (artifacts.py).
BUILD_MEMORY = {
    "bf16": (426, 5.71),
    "fp16": (427, 5.71),
    "fp32": (127, 5.72),
    "int4": (946, 6.27),
    "int8": (506, 5.67),
}

# Size on disk of each precision's artifact: (MB, bytes per parameter), the least-squares line over the same
# cells; a build is refused before it starts where the disk has less free (artifacts.py).
BUILD_DISK = {
    "bf16": (4, 2.00),
    "fp16": (4, 2.00),
    "fp32": (4, 4.00),
    "int4": (111, 0.69),
    "int8": (98, 1.12),
}


@dataclass(frozen=True)
class Options(BackendOptions):
    attn_implementation: str = "sdpa"
    device: str = "cpu"

    def __post_init__(self):
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation {self.attn_implementation!r} is not one of: sdpa, eager")
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r} is not one of: {', '.join(DEVICES)}")


DEVICES = ("cpu", "cuda")
# The quantized artifacts hold CPU kernels' layouts (torchao's dynamic int8, quanto's int4 on CPU) and were only
# checked there; on a GPU only the float precisions run.
CUDA_PRECISIONS = ("fp32", "bf16", "fp16")


def environment_problem(options: Options) -> str | None:
    """Whether the installed torch can run on the chosen device (imports torch only for cuda)."""
    if options.device == "cpu":
        return None
    from importlib.metadata import version

    installed = version("torch")
    if installed.endswith("+cpu"):
        return (
            f"device: cuda needs a CUDA build of torch; the installed torch {installed} is the CPU build "
            "(envs/requirements.txt); install a CUDA build or use cpu"
        )
    import torch

    if not torch.cuda.is_available():
        return f"device: cuda: torch {installed} finds no CUDA GPU on this machine; use cpu"
    return None


def precision_problem(precision: str, options: Options) -> str | None:
    if options.device == "cuda" and precision not in CUDA_PRECISIONS:
        return f"{precision} artifacts are built for CPU kernels; on device cuda use {', '.join(CUDA_PRECISIONS)}"
    return None


def unsupported_reason(precision: str) -> str | None:
    """Half precisions need CPU kernels for matmul and conv; probe them once with a tiny op."""
    if precision not in ("bf16", "fp16"):
        return None
    if precision not in _probe_cache:
        import torch

        dtype = getattr(torch, _FLOAT_DTYPES[precision])
        try:
            torch.nn.functional.conv1d(torch.ones(1, 2, 4, dtype=dtype), torch.ones(2, 2, 3, dtype=dtype))
            torch.ones(2, 2, dtype=dtype) @ torch.ones(2, 2, dtype=dtype)
            _probe_cache[precision] = None
        except RuntimeError as error:
            _probe_cache[precision] = f"this CPU build of torch has no {precision} kernels ({error})"
    return _probe_cache[precision]


def decoding_problem(decoding: dict) -> str | None:
    """Beam search cannot be timed step by step: transformers refuses a streamer with num_beams > 1."""
    if decoding.get("num_beams", 1) != 1:
        return "decoding.num_beams: pytorch times each decoder step with a streamer, which beam search refuses; set 1"
    return None


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


def prepare(hf_dir: Path, precision: str, options: Options, output_dir: Path, context: BuildContext) -> dict:
    """Convert/quantize the fp32 HF model and save what `load` reads back (`context` is not needed here)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32).eval()
    _save_processor(hf_dir, output_dir)
    if precision in _FLOAT_DTYPES:
        model.to(getattr(torch, _FLOAT_DTYPES[precision])).save_pretrained(output_dir)
    elif precision == "int8":
        from torchao.quantization import quantize_

        quantize_(model, _int8_config(), filter_fn=_keep_linear)
        model.config.save_pretrained(output_dir)
        model.generation_config.save_pretrained(output_dir)
        torch.save(model.state_dict(), output_dir / "model_int8.pt")
    elif precision == "int4":
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


def _load_model(artifact_dir: Path, precision: str, options: Options):
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    if precision in _FLOAT_DTYPES:
        dtype = getattr(torch, _FLOAT_DTYPES[precision])
        return WhisperForConditionalGeneration.from_pretrained(
            artifact_dir, dtype=dtype, attn_implementation=options.attn_implementation
        )
    config = WhisperConfig.from_pretrained(artifact_dir)
    config._attn_implementation = options.attn_implementation
    with torch.device("meta"):  # a skeleton without memory: the saved quantized tensors are assigned into it
        model = WhisperForConditionalGeneration(config).eval()
    if precision == "int8":
        state = torch.load(artifact_dir / "model_int8.pt", weights_only=False)
        model.load_state_dict(state, assign=True)
    else:
        from optimum.quanto import requantize
        from safetensors.torch import load_file

        quant_map = json.loads((artifact_dir / "quantization_map.json").read_text())
        requantize(model, load_file(artifact_dir / "model_int4.safetensors"), quant_map, device=torch.device("cpu"))
    model.tie_weights()
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig.from_pretrained(artifact_dir)
    return model


def _sync(device) -> None:
    """Wait for the GPU's queued work, so that a timestamp taken next is when the work was done."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


class _TokenClock:
    """A generate() streamer that timestamps every decoder step (the first put is the prompt)."""

    def __init__(self, device):
        self.times: list[float] = []
        self.device = device

    def put(self, _tokens):
        _sync(self.device)
        self.times.append(time.perf_counter())

    def end(self):
        pass


class _EncoderClock:
    """Times the encoder as every backend cuts it (base.Transcription.encoder_ms): the encoder forward pass
    plus each decoder layer's cross-attention key/value projections of its output. transformers computes
    those projections inside the first decoder step (then reuses them from the cache), so they are timed
    with hooks on the projections themselves and moved to the encoder side of the cut."""

    def __init__(self, model):
        self.spans: list[tuple[str, float, float]] = []  # (module, start, end) of every timed call
        self._started: dict[str, float] = {}
        self.device = model.device
        self._watch(model.get_encoder(), "encoder")
        for index, layer in enumerate(model.get_decoder().layers):
            self._watch(layer.encoder_attn.k_proj, f"decoder.{index}.cross_k")
            self._watch(layer.encoder_attn.v_proj, f"decoder.{index}.cross_v")

    def _watch(self, module, name: str) -> None:
        module.register_forward_pre_hook(lambda *_: self._start(name))
        module.register_forward_hook(lambda *_: self._end(name))

    def _start(self, name: str) -> None:
        _sync(self.device)
        self._started[name] = time.perf_counter()

    def _end(self, name: str) -> None:
        _sync(self.device)
        self.spans.append((name, self._started.pop(name), time.perf_counter()))

    def ms(self) -> float:
        return sum(end - start for _, start, end in self.spans) * 1e3


class PyTorchTranscriber:
    def __init__(self, model, processor, precision: str, decoding: Decoding):
        import torch

        self.torch = torch
        self.model = model.eval()
        self.processor = processor
        self.dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
        self.generate_kwargs = _generate_kwargs(model, decoding)
        # one generate() call returns the prompt before the generated tokens (see _generate_kwargs)
        self.prompt_length = 0 if decoding.timestamps else len(prompt_tokens(model.generation_config, decoding))
        self.encoder_clock = _EncoderClock(model)
        self.device = model.device
        self.runtime = {"device": model.device.type}
        if model.device.type == "cuda":
            self.runtime["gpu"] = torch.cuda.get_device_name(model.device)

    def transcribe(self, audio: np.ndarray, forced_tokens: int | None = None) -> Transcription:
        torch = self.torch
        # forced length: transformers' min-new-tokens processor keeps end-of-text out until the count is reached
        length = {"min_new_tokens": forced_tokens, "max_new_tokens": forced_tokens} if forced_tokens else {}
        self.encoder_clock.spans.clear()
        clock = _TokenClock(self.device)
        start = time.perf_counter()
        features = self.processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
        features = features.to(self.device, self.dtype)
        _sync(self.device)
        features_done = time.perf_counter()
        with torch.no_grad():  # quanto tensors cannot run under inference_mode
            sequences = self.model.generate(features, streamer=clock, **(self.generate_kwargs | length))
        text = self.processor.tokenizer.decode(sequences[0], skip_special_tokens=True)
        end = time.perf_counter()
        steps = clock.times[1:]
        return Transcription(
            text=text,
            n_tokens=len(steps),
            features_ms=(features_done - start) * 1e3,
            encoder_ms=self.encoder_clock.ms(),
            first_token_ms=(steps[0] - start) * 1e3 if steps else (end - start) * 1e3,
            decode_ms=(steps[-1] - steps[0]) * 1e3 if steps else 0.0,
            total_ms=(end - start) * 1e3,
        )

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        """Decode a batch with generate(): every input is the same 30 s window, so no attention mask is needed."""
        self.encoder_clock.spans.clear()
        features = self.processor.feature_extractor(audios, sampling_rate=16000, return_tensors="pt").input_features
        with self.torch.no_grad():
            sequences = self.model.generate(features.to(self.device, self.dtype), **self.generate_kwargs).cpu()
        eos = self.model.generation_config.eos_token_id
        sequences = sequences[:, self.prompt_length :]
        texts = self.processor.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        # sequences hold the generated tokens, padded with end-of-text after each row's end; a row that
        # reached max_new_tokens has no end-of-text token to count
        counts = [int((row != eos).sum()) + int((row == eos).any()) for row in sequences]
        return [Hypothesis(text, count) for text, count in zip(texts, counts, strict=True)]


def _generate_kwargs(model, decoding: Decoding) -> dict:
    kwargs = {
        "num_beams": decoding.num_beams,
        "do_sample": False,
        "max_new_tokens": decoding.max_new_tokens,
        "return_timestamps": decoding.timestamps,
    }
    if getattr(model.generation_config, "is_multilingual", False):
        kwargs |= {"language": decoding.language, "task": decoding.task}
    if not decoding.timestamps:
        # short-form without timestamps is one decoder run per 30 s window, as in every other backend.
        # transformers' loop otherwise treats a timestamp token the model emits anyway as the end of a segment
        # and re-runs encoder and decoder from there (random weights did, 5 times a clip: 5x the encoder ms)
        kwargs["force_unique_generate_call"] = True
    return kwargs


def load(artifact_dir: Path, precision: str, options: Options, decoding: Decoding, threads: int):
    import torch
    import transformers
    from transformers import WhisperProcessor

    # generate() warns on every call that max_new_tokens overrides the config's max_length.
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = _load_model(Path(artifact_dir), precision, options).to(options.device)
    processor = WhisperProcessor.from_pretrained(artifact_dir)
    return PyTorchTranscriber(model, processor, precision, decoding)


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
