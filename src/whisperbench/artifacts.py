"""Build one (model, backend, precision) artifact and check it before use.

`artifact.json` records the backend's metadata, every file's sha256 and the size on disk, so
a corrupt or half-copied artifact is detected instead of silently measured.
"""

from __future__ import annotations

import json
from pathlib import Path

from whisperbench.backends import registry
from whisperbench.errors import UserError
from whisperbench.io import atomic_dir, sha256_file, write_json
from whisperbench.metrics import provenance
from whisperbench.models import fetch

MANIFEST = "artifact.json"


def _files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.name != MANIFEST)


def build(model_dir: str | Path, model: str, backend: str, precision: str, params: dict, output: str | Path) -> dict:
    spec = registry.get(backend)
    module = spec.load_module()
    options = module.Options.from_params(params["backends"][backend].get("options", {}))
    source = fetch.read_source(model_dir)
    with atomic_dir(output) as staging:
        details = module.prepare(fetch.hf_dir(model_dir), precision, options, staging)
        files = _files(staging)
        record = {
            "model": model,
            "backend": backend,
            "precision": precision,
            "weights_sha256": source["weights_sha256"],
            "size_bytes": sum(f.stat().st_size for f in files),
            "files": {str(f.relative_to(staging)): sha256_file(f) for f in files},
            "built": provenance.now(),
            **details,
        }
        write_json(staging / MANIFEST, record)
    return record


def verify(artifact_dir: str | Path) -> dict:
    """The artifact's record, after checking every file against its recorded sha256."""
    artifact_dir = Path(artifact_dir)
    manifest = artifact_dir / MANIFEST
    if not manifest.is_file():
        raise UserError(f"{manifest}: missing; delete {artifact_dir} and re-run to rebuild it")
    record = json.loads(manifest.read_text())
    for name, expected in record["files"].items():
        path = artifact_dir / name
        if not path.is_file() or sha256_file(path) != expected:
            raise UserError(
                f"{path}: missing or corrupt (sha256 differs from {MANIFEST}); delete {artifact_dir} and re-run"
            )
    return record
