"""One ONNX Runtime precision built from the export: the recipes, each a quantizer of onnxruntime."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from whisperbench.backends import processor as processor_files
from whisperbench.backends.base import BuildContext
from whisperbench.backends.onnxruntime import CALIBRATION, MIXED, Options, graphs, mixed, tied
from whisperbench.mixed import plan

log = logging.getLogger("whisperbench")


def _reduce_range(options: Options) -> bool:
    from whisperbench.metrics.provenance import has_vnni

    return not has_vnni() if options.int8_reduce_range == "auto" else bool(options.int8_reduce_range)


def _untied(source: Path, scratch: Path) -> tuple[Path, dict[str, str], list[str], list[str]]:
    """The graph with its tied projection as a real initializer (so quantizers see it), the tied pairs, the
    float-only nodes, and the tied embedding's Gathers (left to `tied.share`, not to the quantizers)."""
    model = graphs.load(source)
    pairs = tied.untie(model)
    path = scratch / source.name
    graphs.save(model, path)
    return path, pairs, graphs.float_only_nodes(model), tied.embedding_gathers(model, pairs)


def _share_tied(target: Path, pairs: dict[str, str]) -> dict:
    """Rewrite the quantized graph at `target` so the embedding reads the projection's weights."""
    if not pairs:
        return {}
    model = graphs.load(target)
    shared = tied.share(model, pairs)
    graphs.save(model, target)
    return {"tied_embedding": shared}


def _fp16(source: Path, target: Path, options: Options, context: dict) -> dict:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # given the path, it infers shapes with infer_shapes_path, which handles graphs past protobuf's 2 GB
    graphs.save(convert_float_to_float16(str(source), keep_io_types=True), target)
    return {"recipe": "convert_float_to_float16(keep_io_types=True)"}


def _int8_dynamic(source: Path, target: Path, options: Options, context: dict) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    untied, pairs, keep_float, embeddings = _untied(source, context["scratch"])
    reduce_range = _reduce_range(options)
    quantize_dynamic(
        untied,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=reduce_range,
        op_types_to_quantize=["MatMul", "Gemm", "Gather"],
        nodes_to_exclude=keep_float + embeddings,
        use_external_data_format=graphs.has_external_data(untied),
        extra_options={"WeightSymmetric": True},  # what tied.share reads (the default, said explicitly)
    )
    return {
        "recipe": "quantize_dynamic QInt8 per-channel",
        "reduce_range": reduce_range,
        "float_nodes": len(keep_float),
    } | _share_tied(target, pairs)


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
    from whisperbench.backends.onnxruntime.runtime import load

    transcriber = load(export_dir, "fp32", Options(), context["build"].decoding, context["build"].threads)
    return [{"input_features": transcriber.features(audio_io.load(row["audio_path"]))} for row in rows]


def _int8_static(source: Path, target: Path, options: Options, context: dict) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if source.name == graphs.DECODER:
        # Static ranges for the one-token decoder step (QDQ on every MatMul, embedding and logits kept
        # float) made tiny.en hallucinate on test-clean (" stuff.", "and he's been doing it all the
        # time"); the decoder of this recipe is quantized dynamically, the encoder statically.
        details = _int8_dynamic(source, target, options, context)
        return details | {"recipe": f"decoder: {details['recipe']} (static ranges hallucinated)"}
    if "feeds" not in context:
        context["feeds"] = _calibration_feeds(source.parent, options, context)
    graph = graphs.load(source)
    keep_float = graphs.float_only_nodes(graph) + graphs.mlp_down_projections(graph)
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
        use_external_data_format=graphs.has_external_data(source),
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

    untied, pairs, _, embeddings = _untied(source, context["scratch"])
    quantizer = MatMulNBitsQuantizer(
        graphs.load(untied),
        bits=4,
        block_size=options.int4_block_size,
        is_symmetric=True,  # what tied.share reads: no zero points
        accuracy_level=options.int4_accuracy_level,
        nodes_to_exclude=embeddings,
        op_types_to_quantize=("MatMul", "Gather"),
        quant_axes=(("MatMul", 0), ("Gather", 1)),
    )
    quantizer.process()
    graphs.save(quantizer.model.model, target)
    return {
        "recipe": f"MatMulNBits 4-bit symmetric, block {options.int4_block_size}",
        "accuracy_level": options.int4_accuracy_level,
    } | _share_tied(target, pairs)


def _int4_mixed(source: Path, target: Path, options: Options, context: dict) -> dict:
    untied, pairs, _, embeddings = _untied(source, context["scratch"])
    model = graphs.load(untied)
    weights = mixed.read_weights_map(source.parent)[source.name]
    high = mixed.high_nodes(model, weights, pairs, context["module_bits"])
    graphs.save(mixed.quantize(model, high, embeddings, options), target)
    return {
        "recipe": f"MatMulNBits symmetric blocks of {options.int4_block_size}: the mix's groups 8-bit, the rest 4-bit",
        "accuracy_level": options.int4_accuracy_level,
        "nodes_8bit": len(high),
    } | _share_tied(target, pairs)


RECIPES = {"fp16": _fp16, "int8_dynamic": _int8_dynamic, "int8_static": _int8_static, "int4": _int4}
RECIPES |= {"int4_mixed": _int4_mixed, "int4_fixedmix": _int4_mixed}


def prepare(source_dir: Path, precision: str, options: Options, output_dir: Path, context: BuildContext) -> dict:
    """Build one precision from the export in `source_dir` into `output_dir`."""
    from importlib.metadata import version

    source_dir = Path(source_dir)
    processor_files.copy(source_dir, output_dir)
    details = {"library": f"onnxruntime {version('onnxruntime')}", "opset": options.opset}
    if precision == "fp32":
        for name in graphs.GRAPHS:  # each graph with its external weights, where it has them
            for path in (source_dir / name, graphs.external_data_path(source_dir / name)):
                if path.is_file():
                    shutil.copy2(path, output_dir / path.name)
        return details | {"recipe": "torch.onnx export (dynamo)"}
    calibration = [json.loads(line) for line in (source_dir / CALIBRATION).read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="whisperbench-onnx-") as scratch:
        state = {"scratch": Path(scratch), "calibration": calibration, "build": context}
        if precision in MIXED:
            mix = plan.choose_for_export(__package__, precision, options, source_dir, context.sensitivity)
            state["module_bits"] = mix.pop("module_bits")
            details |= {"mix": mix} | (
                {"calibration_ids": mix.pop("calibration_ids")} if "calibration_ids" in mix else {}
            )
        for name in graphs.GRAPHS:
            details[name] = RECIPES[precision](source_dir / name, output_dir / name, options, state)
    if "calibration_ids" in details[graphs.ENCODER]:  # top level: evaluation checks it is disjoint
        details["calibration_ids"] = details[graphs.ENCODER].pop("calibration_ids")
        details["calibration_asked"] = details[graphs.ENCODER].pop("calibration_asked")
        details[graphs.DECODER].pop("calibration_ids", None)
    return details
