"""The fault table: each fault-injection test records what the user saw and what was kept.

`WHISPERBENCH_FAULT_TABLE=README.md pytest -m faults` rewrites the README's table from a run of the
suite (rows of faults that did not run this time are kept as they were).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV = "WHISPERBENCH_FAULT_TABLE"
BEGIN, END = "<!-- fault table: begin -->", "<!-- fault table: end -->"
HEADER = "| fault | what the user sees | what is kept |\n|---|---|---|\n"
# The table's order: the pipeline's, from params to a killed run.
ORDER = [
    "params: unknown key (a typo)",
    "params: wrong type",
    "params: a precision the backend does not support",
    "params: an option value the backend rejects",
    "params: not valid YAML",
    "params file missing",
    "audio file listed in a transcript but missing",
    "audio file corrupt",
    "transcript line without text",
    "download truncated or corrupt (md5)",
    "cached export or artifact corrupt",
    "result file corrupt (hypotheses.jsonl)",
    "disk full while writing a result",
    "backend raises mid-cell",
    "a cell's process killed (SIGKILL) while writing",
    "a second run started in the same folder",
    "the whole run killed (SIGKILL) at three points, then the same command",
]


def seen(text: str, *folders: Path, marker: str = "whisperbench: error:") -> str:
    """The one line (containing `marker`) the user saw, no traceback, this test's folders shown as <folder>."""
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if marker in line]
    assert len(lines) == 1, f"expected one line with {marker!r}, got {len(lines)}:\n{text}"
    line = lines[0][lines[0].index(marker) :]
    for folder in folders:
        line = line.replace(str(folder), "<folder>")
    return re.sub(r"\s+", " ", line).strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    """A line as the user saw it, in code style; text that marks its own code spans is kept as written."""
    return _cell(text) if "`" in text else f"`{_cell(text)}`"


def _rows(text: str) -> dict[str, str]:
    if BEGIN not in text:
        return {}
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    found = {}
    for line in block.splitlines():
        if line.startswith("| ") and not line.startswith(("| fault |", "|---")):
            fault = re.split(r"(?<!\\)\|", line)[1].strip()
            found[fault] = line
    return found


def write(target: Path, recorded: dict[str, tuple[str, str]]) -> None:
    """Replace the table between the markers in `target` (created with the markers if absent)."""
    text = target.read_text() if target.is_file() else f"{BEGIN}\n{END}\n"
    rows = _rows(text) | {
        fault: f"| {fault} | {_code(sees)} | {_cell(kept)} |" for fault, (sees, kept) in recorded.items()
    }
    body = HEADER + "".join(rows[fault] + "\n" for fault in ORDER if fault in rows)
    before, rest = text.split(BEGIN, 1)
    target.write_text(before + BEGIN + "\n" + body + END + rest.split(END, 1)[1])


class Table:
    """What the tests of one session recorded; written at the session's end when ENV names a file."""

    def __init__(self):
        self.recorded: dict[str, tuple[str, str]] = {}

    def add(self, fault: str, sees: str, kept: str) -> None:
        assert fault in ORDER, f"add {fault!r} to faults.ORDER"
        self.recorded[fault] = (sees, kept)

    def finish(self) -> None:
        target = os.environ.get(ENV)
        if target and self.recorded:
            write(Path(target), self.recorded)
