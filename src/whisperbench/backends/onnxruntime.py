"""ONNX Runtime backend: one FP32 export per model, then FP32, FP16, INT8 dynamic, INT8 static (QDQ), INT4.

`export` writes the two graphs of `onnx_graphs` once per model and checks them against PyTorch
FP32 on real clips; `prepare` turns that export into one precision:

* fp32: the export as is;
* fp16: `onnxruntime.transformers.float16` (inputs/outputs stay float32);
* int8_dynamic: `quantize_dynamic`, per-channel int8 weights; 7-bit weights (`reduce_range`)
  unless the CPU has VNNI, as ONNX Runtime advises (saturation in u8s8 kernels without it);
* int8_static: `quantize_static`, QDQ, activations calibrated on utterances disjoint from the
  evaluation sets (the export's calibration manifest), for the encoder; the decoder step is
  quantized dynamically (static ranges made it hallucinate, see `_int8_static`);
* int4: `MatMulNBitsQuantizer` (weight-only, symmetric blocks), embedding included.

Both INT8 recipes keep attention's activation × activation MatMuls, convolutions, layer norms,
softmax and the position tables in float. Decoding is greedy with the KV cache and the same
rules as the PyTorch backend (forced prompt, suppressed tokens, no timestamps, max new tokens).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisperbench.backends import onnx_graphs
from whisperbench.backends.base import (
    BackendOptions,
    BuildContext,
    Decoding,
    Hypothesis,
    Transcription,
    prompt_tokens,
)

log = logging.getLogger("whisperbench")

PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_static", "int4")
MAX_AUDIO_S = 30.0  # one 30 s window per utterance: no long-form decoding
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
CALIBRATION_METHODS = ("minmax", "percentile")
EXPORT_CHECK = "export_check.json"
CALIBRATION = "calibration.jsonl"
MIN_IDENTICAL = 0.99  # share of check utterances whose FP32 ONNX transcript must equal PyTorch's
PROCESSOR_FILES = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "normalizer.json",
)


@dataclass(frozen=True)
class Options(BackendOptions):
    execution_provider: str = "cpu"
    graph_optimization_level: str = "all"
    opset: int = onnx_graphs.OPSET
    int8_reduce_range: str | bool = "auto"
    calibration_utterances: int = 8
    calibration_method: str = "minmax"
    int4_block_size: int = 32
    int4_accuracy_level: int = 4
    export_check_utterances: int = 16

    def __post_init__(self):
        checks = [
            ("execution_provider", self.execution_provider in PROVIDERS, ", ".join(PROVIDERS)),
            (
                "graph_optimization_level",
                self.graph_optimization_level in OPTIMIZATION_LEVELS,
                ", ".join(OPTIMIZATION_LEVELS),
            ),
            ("opset", isinstance(self.opset, int) and 17 <= self.opset <= 21, "an integer from 17 to 21"),
            ("int8_reduce_range", self.int8_reduce_range in ("auto", True, False), "auto, true, false"),
            ("calibration_utterances", _positive(self.calibration_utterances), "a positive integer"),
            ("calibration_method", self.calibration_method in CALIBRATION_METHODS, ", ".join(CALIBRATION_METHODS)),
            ("int4_block_size", self.int4_block_size in (16, 32, 64, 128, 256), "16, 32, 64, 128, 256"),
            ("int4_accuracy_level", self.int4_accuracy_level in (0, 1, 2, 3, 4), "0, 1, 2, 3, 4"),
            ("export_check_utterances", _positive(self.export_check_utterances), "a positive integer"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not allowed; allowed: {allowed}")


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def unsupported_reason(precision: str) -> str | None:
    return None


def batch_reason(precision: str) -> str | None:
    """Why batching would change this precision's transcripts (the accuracy pass then decodes one at a time)."""
    if precision in ("int8_dynamic", "int8_static"):
        # DynamicQuantizeLinear takes one scale over the whole activation tensor, so each utterance's
        # decoder inputs would be quantized with the range of the others in its batch.
        return f"{precision} quantizes decoder activations per tensor, across the batch"
    return None


def decoding_problem(decoding: dict) -> str | None:
    """Rules of `decoding` this backend's greedy loop does not implement."""
    if decoding.get("num_beams", 1) != 1:
        return "decoding.num_beams: onnxruntime decodes greedily; set 1"
    if decoding.get("timestamps"):
        return "decoding.timestamps: onnxruntime decodes without timestamps; set false"
    return None


def environment_problem(options: Options) -> str | None:
    """Whether the chosen execution provider exists in this onnxruntime build (imports onnxruntime)."""
    if options.execution_provider == "cpu":
        return None
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if PROVIDERS[options.execution_provider] not in available:
        return (
            f"execution_provider: {options.execution_provider} is not available in this onnxruntime build "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use cpu"
        )
    return None


# ---------------------------------------------------------------- export (once per model)


def _copy_processor(source: Path, output_dir: Path) -> None:
    for name in PROCESSOR_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, output_dir / name)


def export(hf_dir: Path, options: Options, context: BuildContext, check_rows: list[dict], output_dir: Path) -> dict:
    """Export the FP32 graphs, check them against PyTorch on `check_rows`, keep the rows for calibration."""
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.set_num_threads(context.threads)
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="sdpa")
    onnx_graphs.export(model.eval(), output_dir, options.opset)
    del model  # the check loads the reference through the PyTorch backend, with its decoding rules
    _copy_processor(hf_dir, output_dir)
    (output_dir / CALIBRATION).write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in check_rows))
    check = export_check(hf_dir, output_dir, check_rows[: options.export_check_utterances], context)
    (output_dir / EXPORT_CHECK).write_text(json.dumps(check, indent=2) + "\n")
    return check


def export_check(hf_dir: Path, export_dir: Path, rows: list[dict], context: BuildContext) -> dict:
    """Encoder max-abs difference and greedy transcripts, ONNX FP32 vs PyTorch FP32."""
    import torch

    from whisperbench.backends import pytorch
    from whisperbench.data import audio as audio_io
    from whisperbench.errors import UserError

    reference = pytorch.load(hf_dir, "fp32", pytorch.Options(), context.decoding, context.threads)
    candidate = load(export_dir, "fp32", Options(), context.decoding, context.threads)
    max_diff, mismatches = 0.0, []
    for row in rows:
        samples = audio_io.load(row["audio_path"])
        features = candidate.features(samples)
        with torch.no_grad():
            expected = reference.model.get_encoder()(torch.from_numpy(features)).last_hidden_state.numpy()
        actual = candidate.encoder.run(["encoder_hidden_states"], {"input_features": features})[0]
        max_diff = max(max_diff, float(np.abs(expected - actual).max()))
        torch_text, onnx_text = reference.transcribe(samples).text, candidate.transcribe(samples).text
        if torch_text != onnx_text:
            mismatches.append({"id": row["id"], "pytorch": torch_text, "onnxruntime": onnx_text})
    identical = (len(rows) - len(mismatches)) / len(rows) if rows else None
    check = {
        "utterances": len(rows),
        "identical_transcripts": len(rows) - len(mismatches),
        "identical_fraction": identical,
        "required_fraction": MIN_IDENTICAL,
        "encoder_max_abs_diff": max_diff,
        "mismatches": mismatches,
    }
    if identical is not None and identical < MIN_IDENTICAL:
        raise UserError(
            f"ONNX export of {hf_dir} differs from PyTorch FP32: {len(mismatches)}/{len(rows)} transcripts differ "
            f"(encoder max abs diff {max_diff:.2e}); first: {mismatches[0]}"
        )
    return check


# ---------------------------------------------------------------- precisions (one artifact each)


def _has_vnni() -> bool:
    from whisperbench.metrics.provenance import cpu_info

    return bool({"avx512_vnni", "avx_vnni"} & set(cpu_info()["flags"]))


def _reduce_range(options: Options) -> bool:
    return not _has_vnni() if options.int8_reduce_range == "auto" else bool(options.int8_reduce_range)


def _untied(source: Path, scratch: Path) -> tuple[Path, list[str]]:
    """The graph with its tied projection as a real initializer (so quantizers see it), and float-only nodes."""
    model = onnx_graphs.load(source)
    onnx_graphs.untie_transposed_weights(model)
    keep_float = onnx_graphs.float_only_nodes(model)
    path = scratch / source.name
    onnx_graphs.save(model, path)
    return path, keep_float


def _fp16(source: Path, target: Path, options: Options, context: dict) -> dict:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx_graphs.save(convert_float_to_float16(onnx_graphs.load(source), keep_io_types=True), target)
    return {"recipe": "convert_float_to_float16(keep_io_types=True)"}


def _int8_dynamic(source: Path, target: Path, options: Options, context: dict) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    untied, keep_float = _untied(source, context["scratch"])
    reduce_range = _reduce_range(options)
    quantize_dynamic(
        untied,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=reduce_range,
        op_types_to_quantize=["MatMul", "Gemm", "Gather"],
        nodes_to_exclude=keep_float,
        use_external_data_format=target.with_name(target.name + ".data").exists(),
    )
    return {
        "recipe": "quantize_dynamic QInt8 per-channel",
        "reduce_range": reduce_range,
        "float_nodes": len(keep_float),
    }


class _Feeds:
    """An onnxruntime CalibrationDataReader over a list of input dicts."""

    def __init__(self, feeds: list[dict]):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)

    def rewind(self):  # the calibrator may ask; one pass is all MinMax needs
        pass


def _calibration_feeds(export_dir: Path, options: Options, context: dict) -> list[dict]:
    """Encoder inputs (log-mel features) of the calibration clips."""
    from whisperbench.data import audio as audio_io

    rows = context["calibration"][: options.calibration_utterances]
    if len(rows) < options.calibration_utterances:
        log.warning(
            "backends.onnxruntime.options.calibration_utterances: asked for %d, the calibration set holds %d",
            options.calibration_utterances,
            len(rows),
        )
    transcriber = load(export_dir, "fp32", Options(), context["build"].decoding, context["build"].threads)
    return [{"input_features": transcriber.features(audio_io.load(row["audio_path"]))} for row in rows]


def _int8_static(source: Path, target: Path, options: Options, context: dict) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if source.name == onnx_graphs.DECODER:
        # Static ranges for the one-token decoder step (QDQ on every MatMul, embedding and logits kept
        # float) made tiny.en hallucinate on test-clean (" stuff.", "and he's been doing it all the
        # time"); the decoder of this recipe is quantized dynamically, the encoder statically.
        details = _int8_dynamic(source, target, options, context)
        return details | {"recipe": f"decoder: {details['recipe']} (static ranges hallucinated)"}
    if "feeds" not in context:
        context["feeds"] = _calibration_feeds(source.parent, options, context)
    graph = onnx_graphs.load(source)
    keep_float = onnx_graphs.float_only_nodes(graph) + onnx_graphs.mlp_down_projections(graph)
    reduce_range = _reduce_range(options)
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    quantize_static(
        source,
        target,
        _Feeds(context["feeds"]),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=True,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=keep_float,
        # No CalibMaxIntermediateOutputs: in onnxruntime 1.32 reaching it discards the collected ranges.
        # MinMax keeps only per-tensor ReduceMin/ReduceMax outputs, so memory stays small anyway.
        calibrate_method=method[options.calibration_method],
    )
    return {
        "recipe": f"quantize_static QDQ U8S8 per-channel, {options.calibration_method} calibration, MLP fc2 in float",
        "reduce_range": reduce_range,
        "calibration_ids": [row["id"] for row in context["calibration"][: options.calibration_utterances]],
        "calibration_asked": options.calibration_utterances,
        "float_nodes": len(keep_float),
    }


def _int4(source: Path, target: Path, options: Options, context: dict) -> dict:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    untied, _ = _untied(source, context["scratch"])
    quantizer = MatMulNBitsQuantizer(
        onnx_graphs.load(untied),
        bits=4,
        block_size=options.int4_block_size,
        is_symmetric=True,
        accuracy_level=options.int4_accuracy_level,
        op_types_to_quantize=("MatMul", "Gather"),
        quant_axes=(("MatMul", 0), ("Gather", 1)),
    )
    quantizer.process()
    onnx_graphs.save(quantizer.model.model, target)
    return {
        "recipe": f"MatMulNBits 4-bit symmetric, block {options.int4_block_size}",
        "accuracy_level": options.int4_accuracy_level,
    }


RECIPES = {"fp16": _fp16, "int8_dynamic": _int8_dynamic, "int8_static": _int8_static, "int4": _int4}


def prepare(source_dir: Path, precision: str, options: Options, output_dir: Path, context: BuildContext) -> dict:
    """Build one precision from the export in `source_dir` into `output_dir`."""
    from importlib.metadata import version

    source_dir = Path(source_dir)
    _copy_processor(source_dir, output_dir)
    details = {"library": f"onnxruntime {version('onnxruntime')}", "opset": options.opset}
    if precision == "fp32":
        for name in onnx_graphs.GRAPHS:
            shutil.copy2(source_dir / name, output_dir / name)
        return details | {"recipe": "torch.onnx export (dynamo)"}
    calibration = [json.loads(line) for line in (source_dir / CALIBRATION).read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="whisperbench-onnx-") as scratch:
        state = {"scratch": Path(scratch), "calibration": calibration, "build": context}
        for name in onnx_graphs.GRAPHS:
            details[name] = RECIPES[precision](source_dir / name, output_dir / name, options, state)
    if "calibration_ids" in details[onnx_graphs.ENCODER]:  # top level: evaluation checks it is disjoint
        details["calibration_ids"] = details[onnx_graphs.ENCODER].pop("calibration_ids")
        details["calibration_asked"] = details[onnx_graphs.ENCODER].pop("calibration_asked")
        details[onnx_graphs.DECODER].pop("calibration_ids", None)
    return details


# ---------------------------------------------------------------- inference


def session_options(options: Options, threads: int):
    import onnxruntime

    levels = {
        "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    session = onnxruntime.SessionOptions()
    session.intra_op_num_threads = threads
    session.inter_op_num_threads = 1
    session.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    session.graph_optimization_level = levels[options.graph_optimization_level]
    session.log_severity_level = 3
    return session


class OnnxTranscriber:
    def __init__(self, encoder, decoder, processor, generation_config, decoding: Decoding):
        self.encoder, self.decoder = encoder, decoder
        self.processor = processor
        self.prompt = prompt_tokens(generation_config, decoding)
        self.eos = generation_config.eos_token_id
        self.suppress = list(generation_config.suppress_tokens or [])
        self.begin_suppress = list(generation_config.begin_suppress_tokens or [])
        self.max_new_tokens = decoding.max_new_tokens
        names = [i.name for i in decoder.get_inputs()]
        self.past_names = [n for n in names if n.startswith("past_")]
        self.encoder_outputs = [o.name for o in encoder.get_outputs() if o.name.startswith("cross_")]
        self.past_shapes = {i.name: (i.shape[1], i.shape[3]) for i in decoder.get_inputs() if i.name in self.past_names}

    @property
    def runtime(self) -> dict:
        return {"providers": self.decoder.get_providers()}

    def features(self, audio: np.ndarray | list[np.ndarray]) -> np.ndarray:
        extractor = self.processor.feature_extractor
        return extractor(audio, sampling_rate=16000, return_tensors="np").input_features.astype(np.float32)

    def _next_tokens(self, logits: np.ndarray, first: bool) -> np.ndarray:
        logits = logits.copy()
        logits[:, self.suppress] = -np.inf
        if first:
            logits[:, self.begin_suppress] = -np.inf
        return logits.argmax(axis=-1)

    def _greedy(self, cross: dict, batch: int) -> tuple[list[list[int]], list[float]]:
        """Greedy decoding of a batch; rows that have ended leave it, so the rest decode as a smaller batch."""
        past = {name: np.zeros((batch, heads, 0, size), np.float32) for name, (heads, size) in self.past_shapes.items()}
        tokens = np.full(batch, self.prompt[0], dtype=np.int64)
        generated: list[list[int]] = [[] for _ in range(batch)]
        rows, times = np.arange(batch), []  # rows: the batch rows still decoding
        for position in range(len(self.prompt) - 1 + self.max_new_tokens):
            outputs = self.decoder.run(None, {"input_ids": tokens[:, None], **past, **cross})
            past = dict(zip(self.past_names, outputs[1:], strict=True))
            if position + 1 < len(self.prompt):
                tokens = np.full(len(rows), self.prompt[position + 1], dtype=np.int64)
                continue
            tokens = self._next_tokens(outputs[0][:, -1], first=not times)
            for row, token in zip(rows, tokens, strict=True):
                generated[row].append(int(token))
            times.append(time.perf_counter())
            going = tokens != self.eos
            if not going.any():
                break
            if not going.all():
                rows, tokens = rows[going], tokens[going]
                past = {name: value[going] for name, value in past.items()}
                cross = {name: value[going] for name, value in cross.items()}
        return generated, times

    def transcribe_features(self, features: np.ndarray):
        encoded = self.encoder.run(self.encoder_outputs, {"input_features": features})
        encoder_done = time.perf_counter()
        cross = dict(zip(self.encoder_outputs, encoded, strict=True))  # named as the decoder's inputs
        tokens, times = self._greedy(cross, len(features))
        return tokens, times, encoder_done

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        """Encode one utterance at a time, decode the batch together.

        Batching the encoder does not pay on CPU: attention's [batch, heads, 1500, 1500] scores leave the
        cache (tiny.en, 2 threads: 0.25 s per utterance alone, 0.53 s each in a batch of 8); the decoder
        steps do gain from it (1.3x at 8).
        """
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, RuntimeException

        try:
            encoded = [self.encoder.run(self.encoder_outputs, {"input_features": self.features(a)}) for a in audios]
            cross = {name: np.concatenate(parts) for name, *parts in zip(self.encoder_outputs, *encoded, strict=True)}
            tokens, _ = self._greedy(cross, len(audios))
        except (Fail, RuntimeException) as error:  # e.g. an allocation that failed: the caller retries smaller
            raise RuntimeError(f"onnxruntime: {error}") from error
        texts = self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [Hypothesis(text, len(row)) for text, row in zip(texts, tokens, strict=True)]

    def transcribe(self, audio: np.ndarray) -> Transcription:
        start = time.perf_counter()
        features = self.features(audio)
        features_done = time.perf_counter()
        batch_tokens, times, encoder_done = self.transcribe_features(features)
        tokens = batch_tokens[0]
        text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
        end = time.perf_counter()
        return Transcription(
            text=text,
            n_tokens=len(tokens),
            features_ms=(features_done - start) * 1e3,
            encoder_ms=(encoder_done - features_done) * 1e3,
            first_token_ms=(times[0] - start) * 1e3 if times else (end - start) * 1e3,
            decode_ms=(times[-1] - times[0]) * 1e3 if times else 0.0,
            total_ms=(end - start) * 1e3,
        )


def load(artifact_dir: Path, precision: str, options: Options, decoding: Decoding, threads: int) -> OnnxTranscriber:
    import onnxruntime
    import transformers
    from transformers import GenerationConfig, WhisperProcessor

    from whisperbench.errors import UserError

    problem = environment_problem(options)
    if problem:
        raise UserError(f"backends.onnxruntime.options.{problem}")
    transformers.logging.set_verbosity_error()
    artifact_dir = Path(artifact_dir)
    providers = [PROVIDERS[options.execution_provider]] + (
        ["CPUExecutionProvider"] if options.execution_provider != "cpu" else []
    )
    sessions = [
        onnxruntime.InferenceSession(str(artifact_dir / name), session_options(options, threads), providers=providers)
        for name in onnx_graphs.GRAPHS
    ]
    if isinstance(sessions[1].get_inputs()[0].shape[0], int):
        raise UserError(
            f"{artifact_dir}: built from an export with a fixed batch of 1 (before batched decoding); delete it and "
            "its data/exports/<model>/onnxruntime folder and re-run"
        )
    processor = WhisperProcessor.from_pretrained(artifact_dir)
    return OnnxTranscriber(*sessions, processor, GenerationConfig.from_pretrained(artifact_dir), decoding)
