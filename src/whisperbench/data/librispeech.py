"""LibriSpeech (openslr SLR12): find a local copy or download a subset; list its utterances.

Downloads resume from a `.part` file, are checked against the official md5 values, and are
extracted into a temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from whisperbench.errors import UserError

# The md5 values published beside the archives on openslr.org/12.
OFFICIAL_MD5 = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
}
ROOT_ENV = "LIBRISPEECH_ROOT"
log = logging.getLogger("whisperbench")


@dataclass(frozen=True)
class Utterance:
    utterance_id: str
    speaker: str
    audio_path: str
    reference: str


def local_root(configured: str | None) -> Path | None:
    """The local LibriSpeech folder from params, else from $LIBRISPEECH_ROOT, else None."""
    value, origin = (configured, "librispeech.root") if configured else (os.environ.get(ROOT_ENV), ROOT_ENV)
    if not value:
        return None
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{origin}={value}: no such folder; point it at the folder that holds test-clean/")
    return root


def subset_dir(root: Path, subset: str, origin: str) -> Path:
    folder = root / subset
    if not folder.is_dir():
        nested = root / "LibriSpeech" / subset
        if nested.is_dir():
            return nested
        raise UserError(f"{origin}={root}: has no {subset}/ folder; point it at the folder that holds {subset}/")
    return folder


def read_subset(folder: Path) -> list[Utterance]:
    """Every utterance of a subset folder (<speaker>/<chapter>/<id>.flac + <speaker>-<chapter>.trans.txt)."""
    utterances, missing = [], []
    for transcript_file in sorted(folder.glob("*/*/*.trans.txt")):
        for line_number, line in enumerate(transcript_file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utterance_id, _, reference = line.strip().partition(" ")
            if not reference.strip():
                raise UserError(
                    f"{transcript_file}:{line_number}: utterance {utterance_id} has no transcript; "
                    "fix the line to '<id> <TEXT>' or remove it"
                )
            audio = transcript_file.parent / f"{utterance_id}.flac"
            if not audio.is_file():
                missing.append(audio)  # partial copies (like the developer sample) hold only some files
                continue
            speaker = utterance_id.split("-")[0]
            utterances.append(Utterance(utterance_id, speaker, str(audio), reference.strip()))
    if not utterances:
        raise UserError(f"{folder}: no utterances found (expected <speaker>/<chapter>/*.trans.txt and .flac files)")
    if missing:
        log.warning(
            "%s: %d utterance(s) listed in its transcripts have no audio file (e.g. %s); left out (a partial copy?)",
            folder,
            len(missing),
            missing[0].name,
        )
    return utterances


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: Path, expected_md5: str, progress: bool = True) -> Path:
    """Download `url` to `target`, resuming a previous `.part`, and check its md5."""
    from tqdm import tqdm

    if target.is_file() and _md5(target) == expected_md5:
        return target
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if offset and response.status != 206:  # server ignored the range: start over
                offset = 0
            total = int(response.headers.get("Content-Length", 0)) + offset
            with (
                open(partial, "ab" if offset else "wb") as out,
                tqdm(
                    total=total or None,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=target.name,
                    disable=not progress,
                ) as bar,
            ):
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise UserError(
            f"cannot download {url} ({getattr(error, 'reason', error)}); offline, set "
            f"{ROOT_ENV} (or librispeech.root) to a local LibriSpeech copy, or run `make demo` "
            "(synthetic speech, no download)"
        ) from None
    actual = _md5(partial)
    if actual != expected_md5:
        partial.unlink()
        raise UserError(f"{url}: md5 {actual} does not match the official {expected_md5}; deleted, run again")
    os.replace(partial, target)
    return target


def extract(archive: Path, destination: Path, subset: str) -> Path:
    """Extract an SLR12 archive so that <destination>/LibriSpeech/<subset> appears atomically."""
    final = destination / "LibriSpeech" / subset
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{subset}.", dir=destination))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        extracted = staging / "LibriSpeech" / subset
        if not extracted.is_dir():
            raise UserError(f"{archive}: does not contain LibriSpeech/{subset}/; delete it and run again")
        os.replace(extracted, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def subset_utterances(subset: str, settings: dict) -> tuple[list[Utterance], str]:
    """Utterances of `subset` from the local root when there is one, else from a download."""
    root = local_root(settings.get("root"))
    if root is not None:
        return read_subset(subset_dir(root, subset, "librispeech root")), f"local:{root}"
    download_dir = Path(settings["download_dir"])
    url = f"{settings['mirror'].rstrip('/')}/{subset}.tar.gz"
    archive = download(url, download_dir / f"{subset}.tar.gz", OFFICIAL_MD5[subset])
    return read_subset(extract(archive, download_dir, subset)), url
