"""Build exports and (model, backend, precision) artifacts, and check them before use.

Each folder's `artifact.json` records the backend's metadata, every file's sha256 and the size
on disk, so a corrupt or half-copied file is detected instead of silently measured. A recipe
that fails (a quantizer that cannot handle a model) leaves a folder whose record says
`status: failed` and why: its cells are reported as failed and the rest of the study goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from whisperbench.backends import registry
from whisperbench.backends.base import BuildContext, Decoding
from whisperbench.errors import UserError
from whisperbench.io import DISK_FULL, atomic_dir, read_json, read_jsonl, sha256_file, write_json
from whisperbench.metrics import provenance
from whisperbench.models import fetch

MANIFEST = "artifact.json"
EXCLUSIVE_SHARE = 0.25  # a build step predicted to need more than this share of the memory runs alone
MEMORY_LOCK = Path(tempfile.gettempdir()) / "whisperbench-build-memory.lock"
log = logging.getLogger("whisperbench")


def _files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.name != MANIFEST)


def build_threads() -> int:
    """Builds are not timed: they use the cores this process may run on (not a params key, so
    changing `timing.threads` or `accuracy.threads` rebuilds nothing)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _context(params: dict, sensitivity: dict | None = None) -> BuildContext:
    return BuildContext(Decoding.from_params(params["decoding"]), build_threads(), sensitivity)


def _options(backend: str, params: dict):
    return registry.get(backend).load_module().Options.from_params(params["backends"][backend].get("options", {}))


def _seal(staging: Path, record: dict) -> dict:
    """Add the files' sha256 and total size to `record` and write it as the folder's manifest."""
    files = _files(staging)
    record |= {
        "size_bytes": sum(f.stat().st_size for f in files),
        "files": {str(f.relative_to(staging)): sha256_file(f) for f in files},
        "built": provenance.now(),
    }
    write_json(staging / MANIFEST, record)
    return record


@contextlib.contextmanager
def _measured():
    """The build's wall time and peak resident memory (from the start of the build, what was already resident
    included; where the peak cannot be reset, the process's lifetime peak), added to the yielded record."""
    separate = provenance.reset_peak_rss()
    start = time.perf_counter()
    cost: dict = {}
    yield cost
    peak = provenance.peak_rss_since_reset_mb() if separate else provenance.peak_rss_mb()
    cost |= {"build_s": round(time.perf_counter() - start, 1), "build_peak_rss_mb": round(peak, 1)}


def memory_need_mb(backend: str, step: str, n_parameters: int | None) -> float | None:
    """A build step's peak memory from its backend's measurement (`BUILD_MEMORY[step] = (MB, bytes per
    parameter)`, fitted on the scale study); None: no measurement."""
    coefficients = _coefficients(backend, "BUILD_MEMORY", step)
    if not coefficients or not n_parameters:
        return None
    return coefficients[0] + coefficients[1] * n_parameters / 1e6


def memory_problem(backend: str, step: str, n_parameters: int | None) -> str | None:
    """Why a build step would not fit in this machine's memory (`memory_need_mb`); None: it fits, or no
    measurement. Checked before the step runs, so it fails with this line instead of being killed."""
    import psutil

    need_mb = memory_need_mb(backend, step, n_parameters)
    memory = psutil.virtual_memory()  # available: free, reclaimable caches included, other jobs' use excluded
    if need_mb is None or need_mb <= memory.available / 1e6:
        return None
    base_mb, per_parameter = _coefficients(backend, "BUILD_MEMORY", step)
    return (
        f"the {backend} {step} step needs about {need_mb / 1e3:.1f} GB of memory for {n_parameters / 1e6:.0f} M "
        f"parameters (measured peak {base_mb:.0f} MB + {per_parameter:.1f} bytes per parameter); this machine has "
        f"{memory.available / 1e9:.1f} GB available of {memory.total / 1e9:.1f} GB"
    )


@contextlib.contextmanager
def memory_slot(backend: str, step: str, n_parameters: int | None):
    """Run a build step beside others only if it is small: one predicted to need more than EXCLUSIVE_SHARE
    of the machine's memory waits until no other build step runs, and they wait for it (a lock file shared
    by every whisperbench process on the machine), so parallel jobs (`--cores 2`) never add two large
    peaks (seen: Core ML fp16 and int8 of large-v3, 13 + 15 GB on 24, killed)."""
    import psutil

    need_mb = memory_need_mb(backend, step, n_parameters)
    exclusive = need_mb is not None and need_mb > EXCLUSIVE_SHARE * psutil.virtual_memory().total / 1e6
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; steps run as the scheduler starts them
        yield
        return
    with open(MEMORY_LOCK, "a", encoding="ascii") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _coefficients(backend: str, table: str, step: str) -> tuple[float, float] | None:
    return getattr(registry.get(backend).load_module(), table, {}).get(step)


def disk_problem(backend: str, step: str, n_parameters: int | None, staging: Path) -> str | None:
    """Why a build step would not fit on the disk of its `staging` folder, from the size its backend's artifacts
    measured (`BUILD_DISK[step] = (MB, bytes per parameter)`); None: it fits, or no measurement."""
    coefficients = _coefficients(backend, "BUILD_DISK", step)
    if not coefficients or not n_parameters:
        return None
    base_mb, per_parameter = coefficients
    need_mb = base_mb + per_parameter * n_parameters / 1e6
    free_mb = shutil.disk_usage(staging).free / 1e6
    if need_mb <= free_mb:
        return None
    return (
        f"the {backend} {step} step writes about {need_mb / 1e3:.1f} GB for {n_parameters / 1e6:.0f} M parameters "
        f"(measured {base_mb:.0f} MB + {per_parameter:.2f} bytes per parameter); {free_mb / 1e3:.1f} GB are free on "
        f"the disk that holds {staging.parent}: free space, then re-run the same command"
    )


@contextlib.contextmanager
def _disk_full_names_the_step(label: str, staging: Path):
    """A step that fills the disk: one line naming it and how much it had written (its staging folder is
    then removed, so no half artifact is left)."""
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        written_mb = sum(f.stat().st_size for f in _files(staging)) / 1e6
        free_mb = shutil.disk_usage(staging).free / 1e6
        raise UserError(
            f"{label}: the disk filled up after the step had written {written_mb / 1e3:.2f} GB ({free_mb:.0f} MB "
            f"left, {error.strerror}); nothing was kept: free space, then re-run the same command"
        ) from None


def _check_disk(backend: str, step: str, n_parameters: int | None, staging: Path, label: str) -> None:
    if problem := disk_problem(backend, step, n_parameters, staging):
        raise UserError(f"{label}: {problem}")


def export(model_dir: str | Path, model: str, backend: str, params: dict, calibration: str | Path, output) -> dict:
    """The backend's one FP32 export of a model, checked against PyTorch on the calibration clips (or a
    failed record, with the reason, where it would not fit in memory)."""
    module = registry.get(backend).load_module()
    source = fetch.read_source(model_dir)
    rows = read_jsonl(calibration)
    record = {"model": model, "backend": backend, "weights_sha256": source["weights_sha256"]}
    record["n_parameters"] = source.get("n_parameters")
    label = f"{model}/{backend} export"
    with memory_slot(backend, "export", record["n_parameters"]), atomic_dir(output) as staging:
        if problem := memory_problem(backend, "export", record["n_parameters"]):
            log.error("%s/%s: %s", model, backend, problem)
            return _seal(staging, record | {"status": "failed", "reason": problem})
        _check_disk(backend, "export", record["n_parameters"], staging, label)
        with _measured() as cost, _disk_full_names_the_step(label, staging):
            check = module.export(fetch.hf_dir(model_dir), _options(backend, params), _context(params), rows, staging)
        return _seal(staging, record | {"status": "ok", "check": check} | cost)


def _weights_bytes(spec, folder: Path) -> int | None:
    """Bytes of the weight tensors alone (payloads, scales, embeddings, norms; no graphs, tokenizer or format
    overhead), from the backend's own reading of its files (`stored_tensors`)."""
    module = spec.load_module()
    if not hasattr(module, "stored_tensors"):
        return None
    return sum(tensor.nbytes for tensor in module.stored_tensors(folder))


def _source(spec, model_dir: str | Path) -> tuple[Path, dict]:
    """What a build reads (its export, or the fetched HF folder) and that source's record."""
    if spec.exports:
        return Path(model_dir), verify(model_dir)
    return fetch.hf_dir(model_dir), fetch.read_source(model_dir)


def _refused(spec, precision: str, source: dict) -> str | None:
    """Why a build must not start: its export failed, or it would not fit in memory."""
    if source.get("status") == "failed":
        return f"the {spec.name} export failed: {source['reason']}"
    return memory_problem(spec.name, precision, source.get("n_parameters"))


def build(
    model_dir: str | Path, model: str, backend: str, precision: str, params: dict, output, sensitivity=None
) -> dict:
    """One precision's artifact; `model_dir` is the fetched model, or the export for exporting backends;
    `sensitivity`: the model's sensitivity record (a mixed precision chosen by it)."""
    spec = registry.get(backend)
    source_dir, source = _source(spec, model_dir)
    record = {"model": model, "backend": backend, "precision": precision, "weights_sha256": source["weights_sha256"]}
    label = f"{model}/{backend}/{precision} build"
    with memory_slot(backend, precision, source.get("n_parameters")), atomic_dir(output) as staging:
        if reason := _refused(spec, precision, source):
            log.error("%s/%s/%s: %s", model, backend, precision, reason)
            return _seal(staging, record | {"status": "failed", "reason": reason})
        _check_disk(backend, precision, source.get("n_parameters"), staging, label)
        with _measured() as cost, _disk_full_names_the_step(label, staging):
            try:
                details = spec.load_module().prepare(
                    source_dir, precision, _options(backend, params), staging, _context(params, sensitivity)
                )
                record |= {"status": "ok", **details, "weights_bytes": _weights_bytes(spec, staging)}
            except (UserError, KeyboardInterrupt, MemoryError):
                raise
            except Exception as error:  # a recipe that fails for this model: record it, let the other cells go on
                if isinstance(error, OSError) and error.errno in DISK_FULL:
                    raise  # the machine's state, not the recipe's: named by _disk_full_names_the_step
                log.exception("%s/%s/%s: the %s recipe failed", model, backend, precision, precision)
                for leftover in staging.iterdir():
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
                record |= {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
        return _seal(staging, record | cost)


def verify(artifact_dir: str | Path, full: bool = False) -> dict:
    """The folder's record, after checking its files: every file against its recorded sha256 where any
    changed size or time since the folder was sealed (or `full`), else the sizes and times alone, so a
    pass over a multi-GB artifact does not re-read it (large-v3 fp32: 6 GB)."""
    artifact_dir = Path(artifact_dir)
    manifest = artifact_dir / MANIFEST
    if not manifest.is_file():
        raise UserError(f"{manifest}: missing; delete {artifact_dir} and re-run to rebuild it")
    record = read_json(manifest, fix=f"delete {artifact_dir} and re-run to rebuild it")
    if not full and not looks_changed(artifact_dir):
        return record
    for name, expected in record["files"].items():
        path = artifact_dir / name
        if not path.is_file() or sha256_file(path) != expected:
            raise UserError(
                f"{path}: missing or corrupt (sha256 differs from {MANIFEST}); delete {artifact_dir} and re-run"
            )
    return record


def looks_changed(folder: str | Path) -> bool:
    """Cheap check (no hashing): a recorded file is missing, has another size, or is not older than the record
    (a file written after sealing, or a copy that did not keep the times)."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return True
    try:
        record, sealed = json.loads(manifest.read_text()), manifest.stat().st_mtime
    except json.JSONDecodeError:
        return True
    paths = [folder / name for name in record["files"]]
    if not all(p.is_file() for p in paths):
        return True
    return sum(p.stat().st_size for p in paths) != record["size_bytes"] or any(
        p.stat().st_mtime >= sealed for p in paths
    )


def remove_if_corrupt(folder: str | Path) -> str | None:
    """Delete an existing folder whose files fail their sha256 (so the engine rebuilds it); say why."""
    folder = Path(folder)
    if not folder.is_dir() or not looks_changed(folder):
        return None
    try:
        verify(folder)
        return None
    except UserError as error:
        shutil.rmtree(folder)
        return f"{str(error).split('; ', 1)[0]}; removed {folder}, so that it is rebuilt"
