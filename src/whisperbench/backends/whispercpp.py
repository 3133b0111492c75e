"""whisper.cpp, a peer runtime (the usual edge choice): our own HF → ggml writer, gguf's block quantizers,
and the pywhispercpp binding (a binary wheel with libwhisper) to run it.

`prepare` writes whisper.cpp's own model file layout (as its `models/convert-h5-to-ggml.py` and
`examples/quantize` do): magic, hyper-parameters, mel filters, the byte-level BPE vocabulary, then every
tensor under whisper.cpp's name. 2-D weight matrices (token embedding included) take the precision's
type — f16, or q8_0 / q5_0 / q4_0 blocks made by `gguf.quants` (the block layouts ggml uses); the
convolutions stay f16, positional embeddings, biases and norms f32, exactly as whisper.cpp's quantizer
leaves them.

Decoding: greedy (best_of 1, no temperature fallback), `<|notimestamps|>`, one segment, no context,
blank and non-speech tokens suppressed (HF's `suppress_tokens` are the non-speech tokens), at most
`max_new_tokens`. Timing comes from whisper.cpp's own timers (`whisper_print_timings`, reset before each
utterance): mel = features, encode = the encoder *with* the cross-attention K/V (whisper.cpp computes them
in its encode step: the shared cut point), first token = mel + encode + the prompt pass, decoder =
the single-token and batched decode passes after it plus sampling; total = wall time of `whisper_full`.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisperbench.backends.base import BackendOptions, BuildContext, Decoding, Hypothesis, Transcription

PRECISIONS = ("f16", "q8_0", "q5_0", "q4_0")
MAX_AUDIO_S = 30.0
MODEL_FILE = "ggml-model.bin"
MAGIC = 0x67676D6C  # "ggml"
GGML_QNT_VERSION, QNT_VERSION_FACTOR = 2, 1000
# precision → (ggml_ftype of the file header, ggml_type of the 2-D weights)
TYPES = {"f16": (1, 1), "q8_0": (7, 8), "q5_0": (8, 6), "q4_0": (2, 2)}
F32, F16 = 0, 1
KEEP_F32 = {"encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding"}
HF_TO_GGML = {
    "self_attn.k_proj": "attn.key",
    "self_attn.q_proj": "attn.query",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
    "encoder.layer_norm": "encoder.ln_post",
    "encoder.embed_positions": "encoder.positional_embedding",
    "decoder.layer_norm": "decoder.ln",
    "decoder.embed_positions": "decoder.positional_embedding",
    "decoder.embed_tokens": "decoder.token_embedding",
}
TIMINGS = re.compile(r"(\w+) time =\s*([\d.]+) ms")


@dataclass(frozen=True)
class Options(BackendOptions):
    pass


def unsupported_reason(precision: str) -> str | None:
    return None


def decoding_problem(decoding: dict) -> str | None:
    if decoding.get("num_beams", 1) != 1:
        return "decoding.num_beams: whispercpp cells decode greedily here; set 1"
    if decoding.get("timestamps"):
        return "decoding.timestamps: whispercpp cells decode without timestamps here; set false"
    return None


# ---------------------------------------------------------------- HF → ggml


def ggml_name(hf_name: str) -> str | None:
    """whisper.cpp's name of an HF parameter (None: the tied output projection, which it does not store)."""
    if hf_name == "proj_out.weight":
        return None
    parts = hf_name.split(".")[1:]  # drop "model."
    if parts[1] == "layers":
        module = ".".join(parts[3:-1])
        return ".".join([parts[0], "blocks", parts[2], HF_TO_GGML[module], parts[-1]])
    module, leaf = ".".join(parts[:-1]), parts[-1]
    if module.endswith("embed_positions"):  # whisper.cpp names the position tables without ".weight"
        return HF_TO_GGML[module]
    return f"{HF_TO_GGML.get(module, module)}.{leaf}"


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ unicode table, reversed: BPE token strings back to their bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def _header(config, ftype: int, mel_filters: np.ndarray, vocab: dict[str, int]) -> bytes:
    fields = [
        MAGIC,
        config.vocab_size,
        config.max_source_positions,
        config.d_model,
        config.encoder_attention_heads,
        config.encoder_layers,
        config.max_target_positions,
        config.d_model,
        config.decoder_attention_heads,
        config.decoder_layers,
        config.num_mel_bins,
        ftype,
    ]
    out = [struct.pack(f"{len(fields)}i", *fields), struct.pack("2i", *mel_filters.shape)]
    out.append(np.ascontiguousarray(mel_filters, dtype=np.float32).tobytes())
    decoder = _byte_decoder()
    out.append(struct.pack("i", len(vocab)))
    for token, _ in sorted(vocab.items(), key=lambda item: item[1]):
        text = bytes(decoder[character] for character in token)
        out.append(struct.pack("i", len(text)) + text)
    return b"".join(out)


def _tensor(name: str, data: np.ndarray, weight_type: int) -> tuple[int, bytes]:
    """(ggml type, the tensor's record in the model file)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        data = data.reshape(-1, 1)
    if data.ndim < 2 or name in KEEP_F32:
        ttype, payload = F32, data.astype(np.float32).tobytes()
    elif data.ndim == 3 or weight_type == F16:  # convolutions stay f16 in every quantized model
        ttype, payload = F16, data.astype(np.float16).tobytes()
    else:
        ttype, payload = weight_type, quantize(data.astype(np.float32), GGMLQuantizationType(weight_type)).tobytes()
    encoded = name.encode()
    dims = struct.pack(f"{data.ndim}i", *reversed(data.shape))  # ggml's ne: innermost first
    return ttype, struct.pack("3i", data.ndim, len(encoded), ttype) + dims + encoded + payload


def write_ggml(hf_dir: Path, precision: str, path: Path) -> dict:
    """Write whisper.cpp's model file for `precision`; return how many tensors took each type."""
    from safetensors.numpy import load_file
    from transformers import WhisperConfig, WhisperFeatureExtractor

    config = WhisperConfig.from_pretrained(hf_dir)
    ftype, weight_type = TYPES[precision]
    header_ftype = ftype if precision == "f16" else GGML_QNT_VERSION * QNT_VERSION_FACTOR + ftype
    mel = WhisperFeatureExtractor.from_pretrained(hf_dir).mel_filters.T  # [n_mels, n_fft // 2 + 1]
    vocab = json.loads((hf_dir / "tokenizer.json").read_text())["model"]["vocab"]
    counts: dict[str, int] = {}
    with open(path, "wb") as out:
        out.write(_header(config, header_ftype, mel, vocab))
        for weights in sorted(hf_dir.glob("*.safetensors")):
            for hf_name, data in load_file(str(weights)).items():
                name = ggml_name(hf_name)
                if name is None:
                    continue
                ttype, record = _tensor(name, data, weight_type)
                out.write(record)
                kind = {F32: "f32", F16: "f16"}.get(ttype, precision)
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def prepare(hf_dir: Path, precision: str, options: Options, output_dir: Path, context: BuildContext) -> dict:
    import shutil
    from importlib.metadata import version

    hf_dir = Path(hf_dir)
    counts = write_ggml(hf_dir, precision, Path(output_dir) / MODEL_FILE)
    for name in ("generation_config.json", "config.json"):  # the prompt and special tokens at load time
        shutil.copy2(hf_dir / name, Path(output_dir) / name)
    return {
        "library": f"pywhispercpp {version('pywhispercpp')} (gguf {version('gguf')} quantizers)",
        "recipe": f"HF → ggml ({precision} 2-D weights; convolutions f16; embeddings, biases, norms f32)",
        "tensors_by_type": counts,
    }


# ---------------------------------------------------------------- runtime


class _Stderr:
    """Capture what C code writes to file descriptor 2 (whisper.cpp's timings and logs)."""

    def __enter__(self):
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *_):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode(errors="replace")
        self.file.close()


class WhisperCppTranscriber:
    def __init__(self, model, eot: int):
        import _pywhispercpp

        self.model, self.binding, self.eot = model, _pywhispercpp, eot
        self.runtime = {
            "cut_points": {
                "encoder": "whisper.cpp encode time (includes the cross-attention K/V)",
                "first_token": "mel + encode + prompt pass (whisper.cpp timers)",
                "decoder": "decode + batched decode + sampling after the prompt pass (whisper.cpp timers)",
            }
        }

    def _run(self, audio: np.ndarray) -> tuple[str, int, dict, float]:
        context = self.model._ctx
        self.binding.whisper_reset_timings(context)
        start = time.perf_counter()
        with _Stderr():
            segments = self.model.transcribe(np.ascontiguousarray(audio, dtype=np.float32))
        wall_ms = (time.perf_counter() - start) * 1e3
        with _Stderr() as captured:
            self.binding.whisper_print_timings(context)
        timings = {key: float(value) for key, value in TIMINGS.findall(captured.text)}
        tokens = sum(
            sum(
                1
                for j in range(self.binding.whisper_full_n_tokens(context, i))
                if self.binding.whisper_full_get_token_id(context, i, j) < self.eot
            )
            for i in range(self.binding.whisper_full_n_segments(context))
        )
        return "".join(segment.text for segment in segments), tokens + 1, timings, wall_ms

    def transcribe(self, audio: np.ndarray) -> Transcription:
        text, n_tokens, timings, wall_ms = self._run(audio)
        first = timings.get("mel", 0.0) + timings.get("encode", 0.0) + timings.get("prompt", 0.0)
        return Transcription(
            text=text,
            n_tokens=n_tokens,
            features_ms=timings.get("mel", 0.0),
            encoder_ms=timings.get("encode", 0.0),
            first_token_ms=first,
            decode_ms=sum(timings.get(key, 0.0) for key in ("decode", "batchd", "sample")),
            total_ms=wall_ms,
        )

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        """whisper_full decodes one utterance at a time."""
        return [Hypothesis(*self._run(audio)[:2]) for audio in audios]


def load(artifact_dir: Path, precision: str, options: Options, decoding: Decoding, threads: int):
    from pywhispercpp.model import Model
    from transformers import GenerationConfig

    generation = GenerationConfig.from_pretrained(artifact_dir)
    with _Stderr() as log:
        model = Model(
            str(Path(artifact_dir) / MODEL_FILE),
            n_threads=threads,
            print_progress=False,
            print_realtime=False,
            print_timestamps=False,
            no_context=True,
            no_timestamps=True,
            single_segment=True,
            temperature=0.0,
            temperature_inc=0.0,
            greedy={"best_of": 1},
            suppress_blank=True,
            suppress_nst=True,
            max_tokens=decoding.max_new_tokens,
            language=decoding.language,
            translate=decoding.task == "translate",
        )
    if not model._ctx:  # whisper.cpp refused the file; using the context would crash the process
        reason = [line for line in log.text.splitlines() if "whisper_model_load:" in line][-1:]
        raise RuntimeError(f"whisper.cpp could not load {artifact_dir / MODEL_FILE}: {' '.join(reason)}")
    return WhisperCppTranscriber(model, generation.eos_token_id)


def _skip_header(handle) -> None:
    handle.seek(12 * 4)  # magic and the 11 hyperparameters
    n_mel, n_fft = struct.unpack("2i", handle.read(8))
    handle.seek(4 * n_mel * n_fft, 1)
    (n_vocab,) = struct.unpack("i", handle.read(4))
    for _ in range(n_vocab):
        handle.seek(struct.unpack("i", handle.read(4))[0], 1)


def stored_tensors(artifact_dir: Path) -> list:
    """The model file's tensor records; a q*_0 block's f16 scale is counted apart from its quants."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    from whisperbench.metrics import sizes

    tensors = []
    with open(Path(artifact_dir) / MODEL_FILE, "rb") as handle:
        _skip_header(handle)
        while header := handle.read(12):
            n_dims, name_length, ttype = struct.unpack("3i", header)
            shape = tuple(reversed(struct.unpack(f"{n_dims}i", handle.read(4 * n_dims))))
            name, kind = handle.read(name_length).decode(), GGMLQuantizationType(ttype)
            block, block_bytes = GGML_QUANT_SIZES[kind]
            nbytes = int(np.prod(shape)) // block * block_bytes
            handle.seek(nbytes, 1)
            scale_bytes = 0 if ttype in (F32, F16) else nbytes // block_bytes * 2  # one f16 `d` per block
            dtype = kind.name.lower().replace("f32", "float32").replace("f16", "float16")
            tensors.append(sizes.StoredTensor(name, dtype, shape, nbytes - scale_bytes, MODEL_FILE))
            if scale_bytes:
                tensors.append(sizes.StoredTensor(f"{name}.d", "float16", shape, scale_bytes, MODEL_FILE, True))
    return tensors
