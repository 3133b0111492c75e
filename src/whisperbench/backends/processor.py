"""The files every artifact carries beside its weights (tokenizer, feature extractor, model and generation
configs), copied by one rule, so that every backend's folder holds the same ones and loads its processor and
decoding rules the same way."""

from __future__ import annotations

import shutil
from pathlib import Path

FILES = (
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


def copy(source: Path, target: Path) -> list[str]:
    """Copy the processor files `source` has into `target` (made if absent); returns their names."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    copied = [name for name in FILES if (Path(source) / name).is_file()]
    for name in copied:
        shutil.copy2(Path(source) / name, target / name)
    return copied
