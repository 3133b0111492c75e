"""Atomic writes: a finished result is never replaced by a partial file."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from whisperbench.errors import UserError

# A full disk or quota: the one write error a user fixes outside the project (then re-runs the same command).
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def _disk_full(target: Path, error: OSError) -> UserError:
    return UserError(
        f"{target}: no space left on the device while writing it ({error.strerror}); nothing was replaced "
        "and finished results are kept: free space, then re-run the same command"
    )


def _remove_stale_temporaries(target: Path) -> None:
    """Remove what a writer of `target` killed mid-write left (SIGKILL skips cleanup); one job writes a
    target at a time, so any such temporary is stale."""
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.replace(temp, target)
    except OSError as error:
        if error.errno in DISK_FULL:
            raise _disk_full(target, error) from None
        raise
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it replaces `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield temp
        if target.exists():
            shutil.rmtree(target)
        os.replace(temp, target)
    except OSError as error:
        if error.errno in DISK_FULL:
            raise _disk_full(target, error) from None
        raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as temp:
        temp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, payload) -> None:
    write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(target: str | os.PathLike, rows) -> None:
    write_text(target, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def read_json(path: str | os.PathLike, fix: str = "") -> dict:
    """A .json record; a corrupt one is one error naming it and the fix (by default: delete it, re-run)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        fix = fix or f"delete {path} and re-run the same command, which rebuilds it"
        raise UserError(f"{path}: not valid JSON ({error.msg}, line {error.lineno}); {fix}") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a .jsonl file; a corrupt line (a damaged copy, an edit) is one error naming it and the fix."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise UserError(
                    f"{path}:{line_number}: not a JSON row ({error.msg}); delete {path} and re-run the same "
                    "command, which rebuilds it"
                ) from None
    return rows


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
