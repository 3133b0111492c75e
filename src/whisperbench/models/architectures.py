"""Each registry model's published architecture: the fields of its `config.json` on the Hugging Face hub.

Used only to build shape-true random weights (`model_source: random`, models/random_weights.py). Every
backend reads the shapes from the model folder's own config, never from this table, so a real folder of
any size goes through the same code.

Vocabularies: English-only models 51864 tokens, multilingual up to large-v2 51865, large-v3 and the models
distilled or pruned from it 51866 (a 100th language, `<|yue|>`, shifts the special tokens after the
languages by one). large-v3 family: 128 mel bins; all others 80.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    d_model: int
    encoder_layers: int
    decoder_layers: int
    attention_heads: int
    num_mel_bins: int = 80
    vocab_size: int = 51865
    # the hub's model card parameter count (safetensors metadata), for the test that the shapes add up
    hub_params_m: float = 0.0

    @property
    def ffn_dim(self) -> int:
        return 4 * self.d_model

    def config_fields(self) -> dict:
        """The `WhisperConfig` keyword arguments of this architecture (the rest are transformers' defaults,
        the same as the hub configs: 1500 source and 448 target positions, gelu, no scaling)."""
        return {
            "d_model": self.d_model,
            "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers,
            "encoder_attention_heads": self.attention_heads,
            "decoder_attention_heads": self.attention_heads,
            "encoder_ffn_dim": self.ffn_dim,
            "decoder_ffn_dim": self.ffn_dim,
            "num_mel_bins": self.num_mel_bins,
            "vocab_size": self.vocab_size,
            "max_source_positions": 1500,
            "max_target_positions": 448,
        }


ENGLISH_VOCAB, MULTILINGUAL_VOCAB, V3_VOCAB = 51864, 51865, 51866

_SIZES = {
    "tiny": Architecture(384, 4, 4, 6, hub_params_m=37.8),
    "base": Architecture(512, 6, 6, 8, hub_params_m=72.6),
    "small": Architecture(768, 12, 12, 12, hub_params_m=242),
    "medium": Architecture(1024, 24, 24, 16, hub_params_m=764),
    "large": Architecture(1280, 32, 32, 20, hub_params_m=1540),
}


def _english(size: str) -> Architecture:
    base = _SIZES[size]
    return Architecture(
        base.d_model,
        base.encoder_layers,
        base.decoder_layers,
        base.attention_heads,
        vocab_size=ENGLISH_VOCAB,
        hub_params_m=base.hub_params_m,
    )


def _v3(decoder_layers: int, hub_params_m: float) -> Architecture:
    return Architecture(1280, 32, decoder_layers, 20, num_mel_bins=128, vocab_size=V3_VOCAB, hub_params_m=hub_params_m)


ARCHITECTURES: dict[str, Architecture] = {
    **{size: arch for size, arch in _SIZES.items() if size != "large"},
    **{f"{size}.en": _english(size) for size in ("tiny", "base", "small", "medium")},
    "large-v1": _SIZES["large"],
    "large-v2": _SIZES["large"],
    "large-v3": _v3(32, 1540),
    "large-v3-turbo": _v3(4, 809),
    "distil-large-v3": _v3(2, 756),
}
