"""Convert a CTranslate2 Whisper model folder to a Hugging Face `WhisperForConditionalGeneration`.

The mapping inverts CTranslate2's own Whisper converter: self-attention Q/K/V are fused in
`linear_0` (K has an all-zero bias that HF does not have), cross-attention K/V are fused in
`linear_1`, the output projection is an alias of the token embeddings, and both position
tables are stored, so nothing is regenerated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from whisperbench.errors import UserError
from whisperbench.models.ct2_reader import read_model_bin

N_TIMESTAMP_TOKENS = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps
_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


def _layer_count(variables: dict, stack: str) -> int:
    indices = {int(m.group(2)) for name in variables if (m := _LAYER.match(name)) and m.group(1) == stack}
    return max(indices) + 1


def _norm(variables: dict, source: str, target: str) -> dict:
    return {f"{target}.weight": variables[f"{source}/gamma"], f"{target}.bias": variables[f"{source}/beta"]}


def _linear(variables: dict, source: str, target: str) -> dict:
    return {f"{target}.weight": variables[f"{source}/weight"], f"{target}.bias": variables[f"{source}/bias"]}


def _split_qkv(variables: dict, source: str, target: str, names: tuple[str, ...]) -> dict:
    weights = np.split(variables[f"{source}/weight"], len(names))
    biases = np.split(variables[f"{source}/bias"], len(names))
    tensors = {}
    for name, weight, bias in zip(names, weights, biases, strict=False):
        tensors[f"{target}.{name}_proj.weight"] = weight
        if name == "k":
            if np.any(bias != 0):
                raise UserError(f"{source}: non-zero key bias; not a Whisper model CTranslate2 wrote")
            continue
        tensors[f"{target}.{name}_proj.bias"] = bias
    return tensors


def _common_layer(variables: dict, source: str, target: str) -> dict:
    tensors = _split_qkv(variables, f"{source}/self_attention/linear_0", f"{target}.self_attn", ("q", "k", "v"))
    tensors |= _linear(variables, f"{source}/self_attention/linear_1", f"{target}.self_attn.out_proj")
    tensors |= _norm(variables, f"{source}/self_attention/layer_norm", f"{target}.self_attn_layer_norm")
    tensors |= _linear(variables, f"{source}/ffn/linear_0", f"{target}.fc1")
    tensors |= _linear(variables, f"{source}/ffn/linear_1", f"{target}.fc2")
    tensors |= _norm(variables, f"{source}/ffn/layer_norm", f"{target}.final_layer_norm")
    return tensors


def _cross_attention(variables: dict, source: str, target: str) -> dict:
    tensors = _linear(variables, f"{source}/attention/linear_0", f"{target}.encoder_attn.q_proj")
    tensors |= _split_qkv(variables, f"{source}/attention/linear_1", f"{target}.encoder_attn", ("k", "v"))
    tensors |= _linear(variables, f"{source}/attention/linear_2", f"{target}.encoder_attn.out_proj")
    tensors |= _norm(variables, f"{source}/attention/layer_norm", f"{target}.encoder_attn_layer_norm")
    return tensors


def map_state_dict(variables: dict) -> dict[str, np.ndarray]:
    """CTranslate2 variable names → HF parameter names (`proj_out` is tied, so left out)."""
    tensors = {
        "model.encoder.conv1.weight": variables["encoder/conv1/weight"],
        "model.encoder.conv1.bias": variables["encoder/conv1/bias"],
        "model.encoder.conv2.weight": variables["encoder/conv2/weight"],
        "model.encoder.conv2.bias": variables["encoder/conv2/bias"],
        "model.encoder.embed_positions.weight": variables["encoder/position_encodings/encodings"],
        "model.decoder.embed_tokens.weight": variables["decoder/embeddings/weight"],
        "model.decoder.embed_positions.weight": variables["decoder/position_encodings/encodings"],
    }
    tensors |= _norm(variables, "encoder/layer_norm", "model.encoder.layer_norm")
    tensors |= _norm(variables, "decoder/layer_norm", "model.decoder.layer_norm")
    for index in range(_layer_count(variables, "encoder")):
        tensors |= _common_layer(variables, f"encoder/layer_{index}", f"model.encoder.layers.{index}")
    for index in range(_layer_count(variables, "decoder")):
        source, target = f"decoder/layer_{index}", f"model.decoder.layers.{index}"
        tensors |= _common_layer(variables, source, target) | _cross_attention(variables, source, target)
    return tensors


def whisper_config(variables: dict, token_ids: dict[str, int]):
    from transformers import WhisperConfig

    d_model = variables["encoder/conv1/weight"].shape[0]
    return WhisperConfig(
        vocab_size=variables["decoder/embeddings/weight"].shape[0],
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_layer_count(variables, "encoder"),
        decoder_layers=_layer_count(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=token_ids["<|endoftext|>"],
        pad_token_id=token_ids["<|endoftext|>"],
        decoder_start_token_id=token_ids["<|startoftranscript|>"],
        tie_word_embeddings=True,
        architectures=["WhisperForConditionalGeneration"],
    )


def _load_tokenizer(ct2_dir: Path, vocab_size: int):
    from tokenizers import AddedToken
    from transformers import WhisperTokenizerFast

    tokenizer_file = ct2_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise UserError(f"{ct2_dir}: no tokenizer.json beside model.bin; these weights cannot be converted")
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tokenizer_file))
    no_timestamps_id = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    if no_timestamps_id + 1 + N_TIMESTAMP_TOKENS != vocab_size:
        raise UserError(
            f"{ct2_dir}: tokenizer (<|notimestamps|>={no_timestamps_id}) does not fit the model's "
            f"vocabulary of {vocab_size}; the tokenizer and model.bin come from different models"
        )
    if len(tokenizer) <= no_timestamps_id + 1:
        timestamps = [f"<|{index * 0.02:.2f}|>" for index in range(N_TIMESTAMP_TOKENS)]
        tokenizer.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False) for t in timestamps])
    return tokenizer


def generation_config(ct2_config: dict, tokenizer, config, multilingual: bool):
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    generation = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        alignment_heads=[list(pair) for pair in ct2_config.get("alignment_heads", [])],
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=multilingual,
        return_timestamps=False,
        max_initial_timestamp_index=50,
    )
    if multilingual:
        lang_ids = ct2_config.get("lang_ids", [])
        generation.lang_to_id = {tokenizer.convert_ids_to_tokens(i): i for i in lang_ids}
        generation.task_to_id = {"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")}
    return generation


def convert(ct2_dir: Path, output_dir: Path) -> None:
    """Write an HF model folder (safetensors fp32, config, generation config, processor)."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    ct2_dir = Path(ct2_dir)
    spec_name, variables = read_model_bin(ct2_dir / "model.bin")
    if spec_name != "WhisperSpec":
        raise UserError(f"{ct2_dir / 'model.bin'}: a {spec_name} model, not a Whisper one")
    vocab_size = variables["decoder/embeddings/weight"].shape[0]
    tokenizer = _load_tokenizer(ct2_dir, vocab_size)
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|startoftranscript|>")}
    config = whisper_config(variables, token_ids)
    # The multilingual vocabulary has 51865 entries; English-only ones 51864 (one fewer language).
    multilingual = vocab_size >= 51865
    ct2_config_path = ct2_dir / "config.json"
    ct2_config = json.loads(ct2_config_path.read_text()) if ct2_config_path.is_file() else {}

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    state = {
        name: torch.from_numpy(np.array(array, dtype=np.float32)) for name, array in map_state_dict(variables).items()
    }
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [name for name in missing if name != "proj_out.weight"]
    if missing or unexpected:
        raise UserError(f"{ct2_dir}: conversion left parameters unmapped: {missing or unexpected}")
    model.tie_weights()
    model.generation_config = generation_config(ct2_config, tokenizer, config, multilingual)
    model.save_pretrained(output_dir)
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(output_dir)
