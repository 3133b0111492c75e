"""CTranslate2 (the runtime under faster-whisper), a peer runtime: its own converter, its own compute types.

`prepare` converts the fetched HF model with `ctranslate2.converters.TransformersConverter`, saving the
weights in the precision's compute type (float32, int8, int8_float32, ... as the CPU supports them:
`ctranslate2.get_supported_compute_types("cpu")`; the others are rejected at validation with that
reason). The processor files go to `processor/` (CTranslate2 writes its own `config.json`).

Decoding: greedy (or `decoding.num_beams` beams), the PyTorch backend's forced prompt, its
`suppress_tokens`, CTranslate2's `suppress_blank` (blank and end-of-text at the first step: the same as
`begin_suppress_tokens`), no timestamps, `max_new_tokens`.

Timing at the shared cut points as far as the API allows: `encode()` is the encoder (CTranslate2
computes the cross-attention keys/values inside `generate()`, so here they fall on the decoder side:
recorded in the run record, not moved by estimate); the first token is timed by a separate one-token
`generate()` on the same encoder output; decoder ms/token is the full `generate()` minus that, over the
steps after the first.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisperbench.backends import processor as processor_files
from whisperbench.backends.base import (
    BackendOptions,
    BuildContext,
    Decoding,
    Hypothesis,
    Transcription,
    pin_feature_threads,
    prompt_tokens,
)

# precision → CTranslate2 compute type
COMPUTE_TYPES = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "int16": "int16",
    "int8": "int8",
    "int8_float32": "int8_float32",
    "int8_bf16": "int8_bfloat16",
    "int8_fp16": "int8_float16",
}
PRECISIONS = tuple(COMPUTE_TYPES)
# The libraries this backend's results depend on: recorded, with their versions, in every cell's run record.
LIBRARIES = ("ctranslate2",)
MAX_AUDIO_S = 30.0  # one 30 s window per utterance, as the other backends (faster-whisper adds long-form)
PROCESSOR = "processor"
CUT_POINTS = {
    "encoder": "encode() only: the cross-attention keys/values are computed inside generate()",
    "first_token": "features + encode() + a separate one-token generate() on the same encoder output",
}


# Peak memory of each build step (precision, or the export): (MB, bytes per parameter), the least-squares line
# over tiny, base, small, medium, large-v3-turbo, large-v3 and distil-large-v3 with random weights (where each ran:
# benchmarks/scaling.py, benchmarks/results/scaling-2026-12-03).
# A step that would need more than the machine has available is refused before it starts (artifacts.py).
BUILD_MEMORY = {
    "fp32": (313, 5.74),
    "int8": (893, 2.98),
    "int8_float32": (643, 4.15),
}

# Size on disk of each precision's artifact: (MB, bytes per parameter), the least-squares line over the same
# cells; a build is refused before it starts where the disk has less free (artifacts.py).
BUILD_DISK = {
    "fp32": (9, 4.00),
    "int8": (13, 1.00),
    "int8_float32": (13, 1.01),
}


@dataclass(frozen=True)
class Options(BackendOptions):
    pass


def _supported() -> set[str]:
    import ctranslate2

    return set(ctranslate2.get_supported_compute_types("cpu"))


def unsupported_reason(precision: str) -> str | None:
    """Compute types this CPU (and this ctranslate2 build) lacks are refused before any work."""
    from importlib.metadata import version

    supported = _supported()
    if COMPUTE_TYPES[precision] in supported:
        return None
    names = ", ".join(p for p, ct in COMPUTE_TYPES.items() if ct in supported)
    return (
        f"ctranslate2 {version('ctranslate2')} has no {COMPUTE_TYPES[precision]} compute type on this CPU "
        f"(it has: {names})"
    )


def decoding_problem(decoding: dict) -> str | None:
    if decoding.get("timestamps"):
        return "decoding.timestamps: ctranslate2 cells decode without timestamps here; set false"
    return None


def prepare(hf_dir: Path, precision: str, options: Options, output_dir: Path, context: BuildContext) -> dict:
    """Convert the HF model with CTranslate2's own converter, weights saved in the compute type."""
    from importlib.metadata import version

    from ctranslate2.converters import TransformersConverter

    hf_dir, output_dir = Path(hf_dir), Path(output_dir)
    compute_type = COMPUTE_TYPES[precision]
    TransformersConverter(str(hf_dir), copy_files=["tokenizer.json"]).convert(
        str(output_dir), quantization=compute_type, force=True
    )
    processor_files.copy(hf_dir, output_dir / PROCESSOR)
    return {
        "library": f"ctranslate2 {version('ctranslate2')}",
        "recipe": f"TransformersConverter, quantization={compute_type}",
        "compute_type": compute_type,
    }


class CTranslate2Transcriber:
    def __init__(self, whisper, processor, generation_config, decoding: Decoding, compute_type: str):
        self.whisper, self.processor = whisper, processor
        self.prompt = prompt_tokens(generation_config, decoding)
        self.suppress = list(generation_config.suppress_tokens or [])
        self.max_new_tokens, self.beam_size = decoding.max_new_tokens, decoding.num_beams
        self.eos = generation_config.eos_token_id
        self.runtime = {"compute_type": compute_type, "cut_points": CUT_POINTS}

    def _features(self, audios) -> object:
        import ctranslate2

        extractor = self.processor.feature_extractor
        features = extractor(audios, sampling_rate=16000, return_tensors="np").input_features
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32))

    def _generate(self, encoded, batch: int, new_tokens: int, forced: bool = False) -> list[list[int]]:
        results = self.whisper.generate(
            encoded,
            [self.prompt] * batch,
            beam_size=self.beam_size,
            # CTranslate2 4.8's Whisper generate() returns at most max_length // 2 tokens, whatever the prompt
            # (measured with end-of-text suppressed: 10 -> 5, 42 -> 21, 448 -> 224 tokens, prompts of 2 and 4
            # tokens; its default 448 is openai-whisper's sample_len of 224): 2 * N lets it decode N tokens
            max_length=2 * new_tokens,
            suppress_blank=True,
            # forced length: end-of-text suppressed, so generation runs to max_length
            suppress_tokens=self.suppress + ([self.eos] if forced else []),
        )
        return [result.sequences_ids[0] for result in results]

    def _n_tokens(self, ids: list[int], limit: int | None = None) -> int:
        """Generated tokens, end-of-text included (CTranslate2 returns them without it)."""
        return len(ids) + (1 if len(ids) < (limit or self.max_new_tokens) else 0)

    def transcribe(self, audio: np.ndarray, forced_tokens: int | None = None) -> Transcription:
        start = time.perf_counter()
        features = self._features(audio)
        features_done = time.perf_counter()
        encoded = self.whisper.encode(features, to_cpu=True)
        encoder_done = time.perf_counter()
        self._generate(encoded, 1, 1)
        first_step_s = time.perf_counter() - encoder_done
        decode_start = time.perf_counter()
        ids = self._generate(encoded, 1, forced_tokens or self.max_new_tokens, forced=forced_tokens is not None)[0]
        end = time.perf_counter()
        total_s = (features_done - start) + (encoder_done - features_done) + (end - decode_start)
        return Transcription(
            text=self.processor.tokenizer.decode(ids, skip_special_tokens=True),
            n_tokens=self._n_tokens(ids, forced_tokens),
            features_ms=(features_done - start) * 1e3,
            encoder_ms=(encoder_done - features_done) * 1e3,
            first_token_ms=(encoder_done - start + first_step_s) * 1e3,
            decode_ms=max(end - decode_start - first_step_s, 0.0) * 1e3,
            total_ms=total_s * 1e3,
        )

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        sequences = self._generate(self._features(audios), len(audios), self.max_new_tokens)
        texts = self.processor.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        return [Hypothesis(text, self._n_tokens(ids)) for text, ids in zip(texts, sequences, strict=True)]


def load(artifact_dir: Path, precision: str, options: Options, decoding: Decoding, threads: int):
    import ctranslate2
    from transformers import GenerationConfig, WhisperProcessor

    artifact_dir = Path(artifact_dir)
    compute_type = COMPUTE_TYPES[precision]
    whisper = ctranslate2.models.Whisper(
        str(artifact_dir), device="cpu", compute_type=compute_type, intra_threads=threads, inter_threads=1
    )
    processor = WhisperProcessor.from_pretrained(artifact_dir / PROCESSOR)
    pin_feature_threads(threads)
    generation_config = GenerationConfig.from_pretrained(artifact_dir / PROCESSOR)
    return CTranslate2Transcriber(whisper, processor, generation_config, decoding, compute_type)


def _string(handle) -> str:
    (length,) = struct.unpack("<H", handle.read(2))
    return handle.read(length)[:-1].decode()


def stored_tensors(artifact_dir: Path) -> list:
    """The variables of CTranslate2's model.bin, read from its header records (its documented layout)."""
    from whisperbench.metrics import sizes

    dtypes = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2's DataType order
    tensors = []
    with open(Path(artifact_dir) / "model.bin", "rb") as handle:
        handle.read(4)  # binary version
        _string(handle)  # model name
        _, count = struct.unpack("<II", handle.read(8))  # spec revision, number of variables
        for _ in range(count):
            name = _string(handle)
            (rank,) = struct.unpack("<B", handle.read(1))
            shape = struct.unpack(f"<{rank}I", handle.read(4 * rank))
            dtype, nbytes = struct.unpack("<BI", handle.read(5))
            handle.seek(nbytes, 1)
            scales = name.endswith("_scale")
            tensors.append(sizes.StoredTensor(name, dtypes[dtype], shape, nbytes, "model.bin", scales))
    return tensors
