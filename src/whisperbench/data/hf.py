"""Any Hugging Face speech dataset, through the `datasets` library: a hub id, a local script or
audiofolder (`path` + `data_dir`), or a folder written by `save_to_disk`.

The Open ASR leaderboard's test sets (AMI, Earnings-22, GigaSpeech, SPGISpeech, TED-LIUM, VoxPopuli)
and users' own data come this way. Audio is read undecoded (`Audio(decode=False)`: `datasets` 5
decodes only through torchcodec, whose registry wheel is CUDA-linked) and decoded with soundfile;
only the selected utterances are read, resampled to 16 kHz mono and written as FLAC into the
manifest's clip folder, so every later step reads plain files.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import re
from pathlib import Path

from whisperbench.data.librispeech import Utterance
from whisperbench.errors import UserError

log = logging.getLogger("whisperbench")


def _load(spec: dict, name: str):
    import datasets

    local = Path(spec["path"]).expanduser()
    if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if spec["split"] not in loaded:
                raise UserError(f"{name}.split: {spec['split']!r} is not in {local}; splits: {', '.join(loaded)}")
            loaded = loaded[spec["split"]]
        return loaded
    try:
        return datasets.load_dataset(
            spec["path"], spec["config"], split=spec["split"], data_dir=spec["data_dir"], streaming=spec["streaming"]
        )
    except (ConnectionError, FileNotFoundError) as error:
        raise UserError(
            f"{name}.path: cannot load {spec['path']!r} ({str(error).splitlines()[0]}); offline, point path at a "
            "folder written by datasets' save_to_disk (or an audiofolder with data_dir)"
        ) from None
    except ValueError as error:  # unknown config or split: datasets names the ones there are
        raise UserError(f"{name}: {spec['path']!r}: {str(error).splitlines()[0]}") from None
    except datasets.exceptions.DatasetGenerationError as error:
        if "torchcodec" in repr(error.__cause__):
            raise _needs_torchcodec(spec, name) from None
        raise


def _needs_torchcodec(spec: dict, name: str) -> UserError:
    # audiofolder and loading scripts encode the audio while preparing or streaming a split
    return UserError(
        f"{name}.path: datasets needs torchcodec to prepare {spec['path']!r} (a CPU build; the registry wheel is "
        "CUDA-linked); or write the dataset with save_to_disk where torchcodec works and point path at that folder"
    )


@contextlib.contextmanager
def _reading(spec: dict, name: str):
    try:
        yield
    except ImportError as error:
        if "torchcodec" in str(error):
            raise _needs_torchcodec(spec, name) from None
        raise


def _check_columns(dataset, spec: dict, name: str) -> None:
    if dataset.column_names is None:  # a stream whose features are unknown until read: the first row will tell
        return
    columns = list(dataset.column_names)
    for key in ("audio_column", "text_column", "id_column", "speaker_column"):
        if spec[key] is not None and spec[key] not in columns:
            raise UserError(f"{name}.{key}: no column {spec[key]!r} in {spec['path']}; columns: {', '.join(columns)}")


def _safe_name(utterance_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", utterance_id)


class HFPool:
    """Every utterance a dataset split can draw from; its audio is read only for the chosen ones."""

    def __init__(self, spec: dict, name: str):
        from datasets import Audio

        self.spec, self.name = spec, name
        dataset = _load(spec, name)
        _check_columns(dataset, spec, name)
        self.dataset = dataset.cast_column(spec["audio_column"], Audio(decode=False))
        self.index: dict[str, int] = {}
        self.utterances: list[Utterance] = []
        wanted = [spec[key] for key in ("text_column", "id_column", "speaker_column") if spec[key]]
        with _reading(spec, name):
            rows = list(self.dataset.select_columns(wanted))
        for position, row in enumerate(rows):
            utterance_id = str(row[spec["id_column"]]) if spec["id_column"] else f"{position:06d}"
            speaker = str(row[spec["speaker_column"]]) if spec["speaker_column"] else utterance_id
            self.index[utterance_id] = position
            self.utterances.append(Utterance(utterance_id, speaker, "", str(row[spec["text_column"]]).strip()))
        if not self.utterances:
            raise UserError(f"{name}: {spec['path']} split {spec['split']} has no rows")
        if len(self.index) < len(self.utterances):
            raise UserError(f"{name}.id_column: {spec['id_column']!r} has repeated values; name a unique column")

    @property
    def origin(self) -> str:
        return f"hf:{self.spec['path']}" + (f"/{self.spec['config']}" if self.spec["config"] else "")

    def materialize(self, chosen: list[Utterance], clips_dir: Path) -> list[Utterance]:
        """Write the chosen utterances' audio as 16 kHz FLAC files; return them with their paths."""
        import soundfile

        from whisperbench.data import audio

        clips_dir.mkdir(parents=True, exist_ok=True)
        wanted = {self.index[u.utterance_id]: u for u in chosen}
        written = []
        rows = self.dataset if self.spec["streaming"] else self.dataset.select(sorted(wanted))
        positions = itertools.count() if self.spec["streaming"] else iter(sorted(wanted))
        with _reading(self.spec, self.name):
            for position, row in zip(positions, rows, strict=False):
                if position not in wanted:
                    continue
                clip = row[self.spec["audio_column"]]
                source = io.BytesIO(clip["bytes"]) if clip.get("bytes") else clip.get("path")
                if not source:
                    raise UserError(f"{self.name}: row {position} of {self.spec['path']} has no audio bytes or path")
                target = clips_dir / f"{_safe_name(wanted[position].utterance_id)}.flac"
                soundfile.write(target, audio.load(source), audio.SAMPLE_RATE, format="FLAC")
                written.append(Utterance(**{**wanted[position].__dict__, "audio_path": str(target)}))
                if len(written) == len(wanted):
                    break
        return written
