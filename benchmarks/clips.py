"""What the benchmarks that time clips share: the first N clips of a manifest, and writing a record beside its
table (OUT.json with the machine's provenance, OUT.md, the table printed)."""

from __future__ import annotations

from pathlib import Path


def manifest_clips(manifest: Path, count: int) -> tuple[list[dict], list]:
    """The manifest's first `count` rows and their audio (16 kHz mono float32)."""
    from whisperbench.data import audio as audio_io
    from whisperbench.io import read_jsonl

    rows = read_jsonl(manifest)[:count]
    return rows, [audio_io.load(row["audio_path"]) for row in rows]


def write_record(out: Path, record: dict, table: str) -> None:
    """OUT.json (the record, with CPU, library versions and date) and OUT.md (the table), atomically."""
    from whisperbench.io import write_json, write_text
    from whisperbench.metrics import provenance

    provenance_fields = {"cpu": provenance.cpu_info(), "libraries": provenance.library_versions()}
    write_json(out.with_suffix(".json"), record | provenance_fields | {"date": provenance.now()})
    write_text(out.with_suffix(".md"), table)
    print(table)
