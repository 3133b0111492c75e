"""whisper.cpp's model file (as its `models/convert-h5-to-ggml.py` and `examples/quantize` write it):
magic, hyper-parameters, mel filters, the byte-level BPE vocabulary, then one record per tensor under
whisper.cpp's name. 2-D weight matrices (token embedding included) take the precision's type — f16, or
q8_0 / q5_0 / q4_0 blocks made by `gguf.quants` (the block layouts ggml uses); the convolutions stay f16,
positional embeddings, biases and norms f32, exactly as whisper.cpp's quantizer leaves them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

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


def untied_problem(config: dict) -> str | None:
    """whisper.cpp computes the logits with the token embedding: a model whose output projection is its own
    tensor cannot be written without changing its outputs."""
    if config.get("tie_word_embeddings", True):
        return None
    return (
        "its output projection (proj_out) is not tied to the token embedding, and whisper.cpp always computes "
        "the logits with the embedding; this model cannot be converted without changing its outputs"
    )


def write_ggml(hf_dir: Path, precision: str, path: Path) -> dict:
    """Write whisper.cpp's model file for `precision`; return how many tensors took each type. Tensors are read
    one at a time from the safetensors files, so a large model is never whole in memory."""
    from safetensors import safe_open
    from transformers import WhisperConfig, WhisperFeatureExtractor

    config = WhisperConfig.from_pretrained(hf_dir)
    if problem := untied_problem(config.to_dict()):
        raise ValueError(f"{hf_dir}: {problem}")
    ftype, weight_type = TYPES[precision]
    header_ftype = ftype if precision == "f16" else GGML_QNT_VERSION * QNT_VERSION_FACTOR + ftype
    mel = WhisperFeatureExtractor.from_pretrained(hf_dir).mel_filters.T  # [n_mels, n_fft // 2 + 1]
    vocab = json.loads((hf_dir / "tokenizer.json").read_text())["model"]["vocab"]
    counts: dict[str, int] = {}
    with open(path, "wb") as out:
        out.write(_header(config, header_ftype, mel, vocab))
        for weights in sorted(hf_dir.glob("*.safetensors")):
            with safe_open(str(weights), framework="np") as handle:
                names = [(ggml_name(hf_name), hf_name) for hf_name in handle.keys()]  # noqa: SIM118
                for name, hf_name in names:
                    if name is None:
                        continue
                    ttype, record = _tensor(name, handle.get_tensor(hf_name), weight_type)
                    out.write(record)
                    kind = {F32: "f32", F16: "f16"}.get(ttype, precision)
                    counts[kind] = counts.get(kind, 0) + 1
    return counts


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
