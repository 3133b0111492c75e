"""One study run per folder, and a run killed mid-way (SIGKILL, OOM, a closed laptop) resumed by the same command.

Snakemake's own lock is a pair of files: a run that dies keeps them, and the next run stops with
"Directory cannot be locked" until someone runs `snakemake --unlock`. whisperbench holds an OS lock
(`flock`) on `.snakemake/whisperbench.lock` for as long as a run lives; the kernel drops it when the
process dies, however it dies. A run that gets that lock therefore knows no other run is alive in the
folder, and any Snakemake lock files left are stale: it removes them. A run that cannot get it is
refused with one line.
"""

from __future__ import annotations

import re
from pathlib import Path

from whisperbench.errors import UserError

LOCK = Path(".snakemake") / "whisperbench.lock"
# Invocations that do not run jobs take no lock (Snakemake takes none for them either).
READ_ONLY = re.compile(
    r"^(--dry-?run|--unlock|--report.*|--list.*|--summary|--detailed-summary|--d3dag|--dag|--rulegraph"
    r"|--filegraph|--lint|--cleanup-metadata|--lc|--li|--lp|--version|--help|-[a-zA-Z]*[nlSDh][a-zA-Z]*)$"
)


def read_only(argv: list[str]) -> bool:
    return any(READ_ONLY.match(argument) for argument in argv[1:])


def claim(folder: Path = Path(".")):
    """Take the folder for this run (the lock lives as long as the returned handle); clear stale Snakemake locks."""
    import fcntl

    path = Path(folder) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise UserError(
            f"{Path(folder).resolve()}: another study is running in this folder (pid {owner}); wait for it "
            "or stop it, then run the same command again"
        ) from None
    import os

    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    for stale in (Path(folder) / ".snakemake" / "locks").glob("*.lock"):
        stale.unlink()  # left by a run that died: none is alive here, we hold the folder
    return handle
