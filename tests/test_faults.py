"""Fault injection: each fault gives the user one clear line (no traceback) and loses no finished result.

Each test records what the user saw in the fault table (tests/faults.py); the README's table is
rewritten from a run with `WHISPERBENCH_FAULT_TABLE=README.md pytest -m faults`.
"""

from __future__ import annotations

import errno
import gzip
import importlib.util
import io
import json
import logging
import pathlib
import re
import signal
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import soundfile
import yaml
from conftest import REPO, minimal_params

from whisperbench import artifacts, config, evaluate
from whisperbench.backends.base import Hypothesis
from whisperbench.config import Cell
from whisperbench.data import librispeech
from whisperbench.errors import UserError
from whisperbench.io import write_json, write_jsonl
from whisperbench.metrics.score import score

pytestmark = pytest.mark.faults


@pytest.fixture(autouse=True)
def _script_logging():
    """Scripts log to the stderr of their call; drop those handlers after each test (that stream closes)."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h) in (logging.StreamHandler, logging.FileHandler)]:
        root.removeHandler(handler)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _fails(capsys, main, argv: list[str], *folders) -> str:
    """Run a script's main as the engine would; it must exit 2 with one error line."""
    import faults

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return faults.seen(capsys.readouterr().err, *folders)


def _params_file(folder: pathlib.Path, params: dict) -> pathlib.Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


BAD_PARAMS = [
    ("params: unknown key (a typo)", {"modles": ["tiny.en"]}),
    ("params: wrong type", {"timing": {"utterances": 2, "repeats": "three"}}),
    ("params: a precision the backend does not support", {"backends": {"pytorch": {"precisions": ["int3"]}}}),
    (
        "params: an option value the backend rejects",
        {"backends": {"coreml": {"precisions": ["fp32"], "options": {"compute_units": "npu"}}}},
    ),
]


@pytest.mark.parametrize(("fault", "change"), BAD_PARAMS, ids=[fault for fault, _ in BAD_PARAMS])
def test_bad_params_stop_before_any_job_with_one_line(fault, change, tmp_path, capsys, fault_table):
    path = _params_file(tmp_path, minimal_params(**change))
    stamp = tmp_path / "params.ok"
    line = _fails(capsys, _script("validate_params"), ["--params", str(path), "--out", str(stamp)], tmp_path)
    assert str(path.name) in line or "params" in line
    assert not stamp.exists()
    fault_table.add(fault, line, "nothing ran: the check comes before the first job")


def test_params_that_are_not_yaml_or_missing_name_the_file(tmp_path, capsys, fault_table):
    path = tmp_path / "params.yaml"
    path.write_text("models: [tiny.en\ntiming: {")
    line = _fails(capsys, _script("validate_params"), ["--params", str(path), "--out", str(tmp_path / "ok")], tmp_path)
    assert "<folder>/params.yaml: not valid YAML" in line
    fault_table.add("params: not valid YAML", line, "nothing ran")
    missing = tmp_path / "study.yaml"
    line = _fails(
        capsys, _script("validate_params"), ["--params", str(missing), "--out", str(tmp_path / "ok")], tmp_path
    )
    assert "params file not found" in line
    fault_table.add("params file missing", line, "nothing ran")


def _librispeech(root: pathlib.Path, texts: dict[str, str], audio: dict[str, bytes | None]) -> pathlib.Path:
    """A LibriSpeech-shaped test-clean with one chapter: transcript lines and .flac files as given."""
    chapter = root / "test-clean" / "1" / "2"
    chapter.mkdir(parents=True)
    (chapter / "1-2.trans.txt").write_text("".join(f"{key} {text}\n" for key, text in texts.items()))
    for key, content in audio.items():
        if content is None:
            soundfile.write(chapter / f"{key}.flac", np.zeros(16000, np.float32), 16000)
        else:
            (chapter / f"{key}.flac").write_bytes(content)
    return root


def _manifest_argv(tmp_path: pathlib.Path, root: pathlib.Path) -> list[str]:
    params = minimal_params(
        datasets={"clean": {"source": "librispeech", "subset": "test-clean", "max_utterances": 2}},
        librispeech={"root": str(root)},
    )
    return ["--params", str(_params_file(tmp_path, params)), "--dataset", "clean", "--out", str(tmp_path / "m.jsonl")]


def test_missing_audio_is_left_out_with_a_warning(tmp_path, capsys, fault_table):
    root = _librispeech(
        tmp_path / "ls", {"1-2-0000": "A", "1-2-0001": "B", "1-2-0002": "C"}, {"1-2-0000": None, "1-2-0002": None}
    )
    _script("make_manifest")(_manifest_argv(tmp_path, root))
    import faults

    line = faults.seen(capsys.readouterr().err, tmp_path, marker="WARNING")
    assert "1 utterance(s)" in line
    fault_table.add(
        "audio file listed in a transcript but missing",
        line,
        "the utterances that have audio; the summary counts the set (n evaluated / n asked)",
    )


def test_corrupt_audio_and_a_transcript_line_without_text_name_the_file(tmp_path, capsys, fault_table):
    root = _librispeech(
        tmp_path / "ls", {"1-2-0000": "A", "1-2-0001": "B"}, {"1-2-0000": None, "1-2-0001": b"fLaC junk"}
    )
    line = _fails(capsys, _script("make_manifest"), _manifest_argv(tmp_path, root), tmp_path)
    assert "1-2-0001.flac: unreadable audio" in line and not (tmp_path / "m.jsonl").exists()
    fault_table.add("audio file corrupt", line, "every finished result; nothing is written for this manifest")

    other = tmp_path / "other"
    other.mkdir()
    root = _librispeech(other / "ls", {"1-2-0000": "A", "1-2-0001": ""}, {"1-2-0000": None, "1-2-0001": None})
    line = _fails(capsys, _script("make_manifest"), _manifest_argv(other, root), other)
    assert "1-2.trans.txt:2: utterance 1-2-0001 has no transcript" in line
    fault_table.add("transcript line without text", line, "every finished result; nothing is written")


def _archive(folder: pathlib.Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"1-2-0000 A\n"
        member = tarfile.TarInfo("LibriSpeech/test-clean/1/2/1-2.trans.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_a_truncated_download_fails_its_md5_and_is_deleted(tmp_path, capsys, fault_table):
    archive = _archive(tmp_path)
    served = tmp_path / "mirror" / "test-clean.tar.gz"
    served.parent.mkdir()
    served.write_bytes(archive[: len(archive) // 2])  # the connection dropped half-way
    target = tmp_path / "data" / "test-clean.tar.gz"
    expected = __import__("hashlib").md5(archive).hexdigest()
    with pytest.raises(UserError) as error:
        librispeech.download(served.as_uri(), target, expected, progress=False)
    line = str(error.value)
    assert "does not match the official" in line and "deleted, run again" in line
    assert not target.exists() and not target.with_name(target.name + ".part").exists()
    served.write_bytes(archive)  # the same command again: a good copy now arrives and passes
    assert librispeech.download(served.as_uri(), target, expected, progress=False) == target
    assert gzip.decompress(target.read_bytes())
    line = "whisperbench: error: " + line.replace(str(tmp_path), "<folder>").replace(expected, "<official md5>")
    actual = line.split("md5 ", 1)[1].split(" ", 1)[0]
    fault_table.add(
        "download truncated or corrupt (md5)",
        line.replace(actual, "<its md5>"),
        "nothing of the bad download; the next run downloads again",
    )


def _sealed(folder: pathlib.Path, record: dict | None = None) -> pathlib.Path:
    with artifacts.atomic_dir(folder) as staging:
        (staging / "decoder.onnx").write_bytes(b"weights" * 100)
        artifacts._seal(staging, record or {"status": "ok"})
    return folder


def test_a_corrupt_cached_artifact_is_removed_and_rebuilt(tmp_path, fault_table):
    folder = _sealed(tmp_path / "data/artifacts/tiny.en/onnxruntime/int8_dynamic")
    good = _sealed(tmp_path / "data/artifacts/tiny.en/onnxruntime/fp32")
    with open(folder / "decoder.onnx", "r+b") as handle:
        handle.write(b"corrupt")
    message = artifacts.remove_if_corrupt(folder)  # what the Snakefile runs before planning
    assert message and not folder.exists()
    assert artifacts.remove_if_corrupt(good) is None and good.is_dir()
    line = "whisperbench: " + message.replace(str(tmp_path) + "/", "")
    fault_table.add(
        "cached export or artifact corrupt",
        line,
        "every other export and artifact; the engine rebuilds this one (DVC restores it from its cache)",
    )


def _cell_results(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    folder.mkdir(parents=True)
    paths = {name: folder / name for name in ("hypotheses.jsonl", "accuracy.json", "timings.jsonl", "timing.json")}
    write_jsonl(paths["hypotheses.jsonl"], [{"id": "a", "reference": "X", "hypothesis": "x", "audio_s": 1.0}])
    write_json(paths["accuracy.json"], {"status": "ok"})
    write_jsonl(paths["timings.jsonl"], [])
    write_json(paths["timing.json"], {"status": "ok"})
    return paths


def _score_argv(paths: dict, out: pathlib.Path) -> list[str]:
    argv = ["--params", str(REPO / "params.yaml"), "--out", str(out)]
    for flag, name in (("--hypotheses", "hypotheses.jsonl"), ("--accuracy", "accuracy.json")):
        argv += [flag, str(paths[name])]
    return argv + ["--timings", str(paths["timings.jsonl"]), "--timing", str(paths["timing.json"])]


def test_a_corrupt_result_file_names_the_file_and_the_fix(tmp_path, capsys, fault_table):
    paths = _cell_results(tmp_path / "results/clean/tiny.en/pytorch/int8")
    finished = tmp_path / "results/clean/tiny.en/pytorch/fp32/metrics.json"
    write_json(finished, {"wer": 0.05})
    with open(paths["hypotheses.jsonl"], "a") as handle:
        handle.write('{"id": "b", "hypoth')  # a damaged copy
    out = paths["hypotheses.jsonl"].parent / "metrics.json"
    line = _fails(capsys, _script("score"), _score_argv(paths, out), tmp_path)
    assert "hypotheses.jsonl:2: not a JSON row" in line and "re-run the same command" in line
    assert not out.exists() and json.loads(finished.read_text()) == {"wer": 0.05}
    fault_table.add("result file corrupt (hypotheses.jsonl)", line, "every other cell's results")


def test_a_full_disk_while_writing_a_result_replaces_nothing(tmp_path, capsys, monkeypatch, fault_table):
    target = tmp_path / "results/clean/tiny.en/pytorch/fp32/summary.csv"
    from whisperbench import io as study_io

    study_io.write_text(target, "finished\n")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    with pytest.raises(UserError) as error:
        study_io.write_text(target, "new\n")
    monkeypatch.undo()
    assert target.read_text() == "finished\n"
    assert [p.name for p in target.parent.iterdir()] == ["summary.csv"]  # no temporary file left behind
    line = "whisperbench: error: " + str(error.value).replace(str(tmp_path), "<folder>")
    assert "no space left on the device" in line
    fault_table.add("disk full while writing a result", line, "the file's previous version and every other result")


class _BreaksAfterOneBatch:
    """A backend bug: the first batch works, every later call raises (one at a time too)."""

    def __init__(self):
        self.calls = 0

    def transcribe_batch(self, audios):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("kernel failed: unexpected shape")
        return [Hypothesis("x", 2) for _ in audios]


def test_a_backend_that_raises_mid_cell_marks_the_cell_failed_and_the_study_goes_on(
    tmp_path, monkeypatch, caplog, fault_table
):
    rows = []
    for index in range(4):
        path = tmp_path / f"u{index}.wav"
        soundfile.write(path, np.zeros(16000, np.float32), 16000)
        rows.append({"id": f"u{index}", "reference": "X", "audio_path": str(path), "duration_s": 1.0})
    write_jsonl(tmp_path / "manifest.jsonl", rows)
    (tmp_path / "model").mkdir()
    write_json(tmp_path / "model/source.json", {"weights_sha256": "0" * 64})
    artifact = _sealed(tmp_path / "artifact", {"status": "ok", "model": "tiny.en"})
    monkeypatch.setattr(evaluate, "load_transcriber", lambda *args: _BreaksAfterOneBatch())
    params = config.validate(minimal_params(accuracy={"batch_size": 2}))
    cell = Cell("synthetic", "tiny.en", "pytorch", "int8")
    paths = (tmp_path / "manifest.jsonl", tmp_path / "model", artifact)
    hypotheses, record = evaluate.accuracy_pass(cell, params, *paths, progress=False)
    assert record["status"] == "failed" and "RuntimeError: kernel failed" in record["reason"]
    assert "Traceback" in record["traceback"]  # kept in the pass's record, not on the console
    metrics = score(hypotheses, record, [], {"status": "ok", "threads": 2})
    assert metrics["status"].startswith("failed: the pytorch backend raised RuntimeError")
    assert metrics["wer"] is None
    (failure,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    fault_table.add(
        "backend raises mid-cell",
        f"`ERROR {failure}`; the summary's status: `{metrics['status']}`",
        "every other cell; the study goes on (the traceback is in the pass's record)",
    )


KILLED_WRITER = """
import os, signal, sys
from whisperbench.io import atomic_path
with atomic_path(sys.argv[1]) as temp:
    with open(temp, "w") as handle:
        handle.write("half a result")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_cell_process_killed_while_writing_leaves_the_previous_result(tmp_path, fault_table):
    target = tmp_path / "hypotheses.jsonl"
    target.write_text('{"id": "finished"}\n')
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert target.read_text() == '{"id": "finished"}\n'  # the half-written file never replaced it
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "hypotheses.jsonl"]
    assert leftovers and all(name.startswith(".hypotheses.jsonl.") for name in leftovers)
    write_jsonl(target, [{"id": "rerun"}])  # the job's next run removes what the killed one left
    assert [p.name for p in tmp_path.iterdir()] == ["hypotheses.jsonl"]
    fault_table.add(
        "a cell's process killed (SIGKILL) while writing",
        "Snakemake's `Error in rule accuracy` (the job failed); the half-written file was a hidden temporary",
        "the previous version of the file; the same command re-runs the job (profiles/default: rerun-incomplete), "
        "whose write removes the stale temporary",
    )


def test_a_second_run_in_the_same_folder_is_refused(tmp_path, fault_table):
    from whisperbench import workdir

    holder = workdir.claim(tmp_path)
    with pytest.raises(UserError) as error:
        workdir.claim(tmp_path)
    holder.close()
    line = "whisperbench: error: " + str(error.value).replace(str(tmp_path.resolve()), "<folder>")
    line = re.sub(r"pid \d+", "pid <pid>", line)
    fault_table.add("a second run started in the same folder", line, "the first run, untouched")
