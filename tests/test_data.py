import hashlib
import http.server
import io
import tarfile
import threading
from functools import partial

import numpy as np
import pytest
import soundfile

from whisperbench.data import audio, datasets, librispeech, manifest, synthetic
from whisperbench.data.librispeech import Utterance
from whisperbench.errors import UserError


def _utterances(speakers: int, per_speaker: int) -> list[Utterance]:
    return [
        Utterance(f"{s}-1-{i:04d}", str(s), f"/audio/{s}-1-{i:04d}.flac", "TEXT")
        for s in range(speakers)
        for i in range(per_speaker)
    ]


def test_selection_is_deterministic_and_spread_over_speakers():
    pool = _utterances(speakers=5, per_speaker=10)
    first = manifest.select(pool, 10, seed=3)
    assert first == manifest.select(list(reversed(pool)), 10, seed=3)
    assert [u.speaker for u in first].count("0") == 2  # 10 over 5 speakers: two each
    assert first != manifest.select(pool, 10, seed=4)
    assert manifest.select(pool, None, seed=0) == sorted(pool, key=lambda u: u.utterance_id)


def test_a_shorter_prefix_of_the_selection_order_is_a_subset_of_a_longer_one():
    pool = _utterances(speakers=5, per_speaker=4)
    order = manifest.selection_order(pool, seed=3)
    assert sorted(u.utterance_id for u in order) == sorted(u.utterance_id for u in pool)
    for small, large in ((2, 5), (5, 10), (10, len(pool))):
        assert set(manifest.select(pool, small, 3)) <= set(manifest.select(pool, large, 3))
    assert len({u.speaker for u in order[:4]}) == 4  # the first picks are four different voices


def test_timed_subset_stays_inside_the_evaluated_one_whatever_its_size(sample_root, monkeypatch):
    from conftest import minimal_params

    from whisperbench import config
    from whisperbench.data import datasets

    monkeypatch.setenv("LIBRISPEECH_ROOT", str(sample_root))

    def ids(rows):
        return {row["id"] for row in rows}

    timed = None
    for size in (8, 12, None):
        spec = {"source": "librispeech", "subset": "test-other", "max_utterances": size, "seed": 1}
        params = config.validate(minimal_params(datasets={"other": spec}, timing={"utterances": 6}))
        evaluated = datasets.manifest_rows("other", params)
        timed_now = datasets.timing_rows("other", params)
        assert len(timed_now) == 6 and ids(timed_now) <= ids(evaluated)
        assert timed is None or ids(timed) == ids(timed_now)
        timed = timed_now


def test_sets_smaller_than_asked_warn_with_both_counts(sample_root, monkeypatch, caplog):
    from conftest import minimal_params

    from whisperbench import config
    from whisperbench.data import datasets

    monkeypatch.setenv("LIBRISPEECH_ROOT", str(sample_root))
    spec = {"source": "librispeech", "subset": "test-clean", "max_utterances": 200, "seed": 0}
    calibration = {"source": "librispeech", "subset": "dev-clean", "max_utterances": 16, "seed": 0}
    params = config.validate(minimal_params(datasets={"tc": spec}, timing={"utterances": 16}, calibration=calibration))
    with caplog.at_level("WARNING", logger="whisperbench"):
        assert len(datasets.manifest_rows("tc", params)) == 3
        assert len(datasets.timing_rows("tc", params)) == 3
        assert len(datasets.calibration_rows(params)) == 14
    messages = caplog.text
    assert "datasets.tc: asked for 200 utterances, the data holds 3" in messages
    assert "timing.utterances: asked for 16 utterances of tc, the data holds 3" in messages
    assert "calibration: asked for 16 utterances, the data holds 14" in messages


def test_reads_the_real_sample_in_place(sample_root, monkeypatch):
    monkeypatch.setenv("LIBRISPEECH_ROOT", str(sample_root))
    params = {
        "datasets": {"tc": {"source": "librispeech", "subset": "test-clean", "max_utterances": None, "seed": 0}},
        "librispeech": {"root": None, "download_dir": "unused", "mirror": "http://127.0.0.1:9"},
    }
    rows = datasets.manifest_rows("tc", params)
    assert [r["id"] for r in rows] == ["1089-134686-0000", "1089-134686-0001", "1089-134686-0002"]
    assert rows[1]["reference"] == "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM"
    assert rows[1]["duration_s"] == pytest.approx(3.275, abs=1e-3)
    assert rows[0]["audio_path"].startswith(str(sample_root.resolve()))  # read in place, not copied


def _fake_subset(root, transcript_line="19-198-0000 HELLO WORLD", audio_bytes=None):
    chapter = root / "test-clean" / "19" / "198"
    chapter.mkdir(parents=True)
    (chapter / "19-198.trans.txt").write_text(transcript_line + "\n")
    flac = chapter / "19-198-0000.flac"
    if audio_bytes is None:
        soundfile.write(flac, np.zeros(16000, dtype=np.float32), 16000)
    else:
        flac.write_bytes(audio_bytes)
    return chapter


def test_missing_transcript_and_corrupt_audio_are_one_line_errors(tmp_path):
    _fake_subset(tmp_path / "a", transcript_line="19-198-0000")
    with pytest.raises(UserError, match=r"19-198.trans.txt:1: utterance 19-198-0000 has no transcript"):
        librispeech.read_subset(tmp_path / "a" / "test-clean")
    chapter = _fake_subset(tmp_path / "b", audio_bytes=b"not a flac file")
    with pytest.raises(UserError, match="19-198-0000.flac: unreadable audio"):
        audio.duration_seconds(str(chapter / "19-198-0000.flac"))


def test_wrong_root_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LIBRISPEECH_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="LIBRISPEECH_ROOT=.*nowhere: no such folder"):
        librispeech.local_root(None)
    monkeypatch.setenv("LIBRISPEECH_ROOT", str(tmp_path))
    with pytest.raises(UserError, match="has no test-other/ folder"):
        librispeech.subset_dir(tmp_path, "test-other", "LIBRISPEECH_ROOT")


def _archive_bytes(tmp_path) -> bytes:
    _fake_subset(tmp_path / "src" / "LibriSpeech")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / "LibriSpeech", arcname="LibriSpeech")
    return buffer.getvalue()


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.server.payload
        start = int(self.headers.get("Range", "bytes=0-").split("=")[1].rstrip("-") or 0)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_RangeHandler))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def test_download_resumes_checks_md5_and_extracts_atomically(tmp_path, server):
    payload = _archive_bytes(tmp_path)
    server.payload = payload
    url = f"http://127.0.0.1:{server.server_port}/test-clean.tar.gz"
    target = tmp_path / "dl" / "test-clean.tar.gz"
    target.parent.mkdir()
    (target.parent / "test-clean.tar.gz.part").write_bytes(payload[:100])  # an interrupted download
    md5 = hashlib.md5(payload).hexdigest()
    librispeech.download(url, target, md5, progress=False)
    assert target.read_bytes() == payload
    folder = librispeech.extract(target, tmp_path / "dl", "test-clean")
    assert [u.utterance_id for u in librispeech.read_subset(folder)] == ["19-198-0000"]
    assert not list((tmp_path / "dl").glob(".test-clean.*"))  # no staging folder left behind


def test_download_md5_mismatch_and_offline_are_clear(tmp_path, server):
    server.payload = b"corrupted archive"
    url = f"http://127.0.0.1:{server.server_port}/test-clean.tar.gz"
    with pytest.raises(UserError, match="does not match the official"):
        librispeech.download(url, tmp_path / "test-clean.tar.gz", "0" * 32, progress=False)
    assert not (tmp_path / "test-clean.tar.gz").exists()
    with pytest.raises(UserError, match="set LIBRISPEECH_ROOT .* or run `make demo`"):
        librispeech.download("http://127.0.0.1:9/test-clean.tar.gz", tmp_path / "x.tar.gz", "0" * 32, progress=False)


def test_synthetic_corpus_has_over_100_sentences_and_reads_back(tmp_path):
    assert len(synthetic.sentences()) >= 100
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    soundfile.write(corpus / "synthetic-0000.wav", np.zeros(8000, dtype=np.float32), 16000)
    (corpus / "transcripts.tsv").write_text("synthetic-0000\tHello there.\n")
    utterances, origin = synthetic.read_corpus(corpus)
    assert utterances[0].reference == "Hello there." and origin.startswith("synthetic:")


def test_piper_speaks_a_sentence_whisper_can_read(tmp_path):
    pytest.importorskip("piper")
    speak, voice = synthetic._piper_speaker()
    samples, rate = speak("The quick brown fox jumps over the lazy dog.")
    assert rate > 8000 and len(samples) / rate > 1.0 and np.abs(samples).max() > 0.05
    assert "joe" in voice
    again, _ = synthetic._piper_speaker()[0]("The quick brown fox jumps over the lazy dog.")
    assert np.array_equal(samples, again)  # the same audio on every run: the demo's tables repeat


@pytest.fixture(scope="module")
def hf_folder(sample_root, tmp_path_factory):
    """The sample's test-other clips as a Hugging Face dataset written by save_to_disk (how users bring their own)."""
    from datasets import Audio, Dataset, DatasetDict

    utterances = librispeech.read_subset(sample_root / "test-other")
    columns = {
        "audio": [u.audio_path for u in utterances],
        "sentence": [u.reference.lower() for u in utterances],
        "key": [u.utterance_id for u in utterances],
        "speaker_id": [u.speaker for u in utterances],
    }
    folder = tmp_path_factory.mktemp("hf") / "test-other"
    DatasetDict({"test": Dataset.from_dict(columns).cast_column("audio", Audio())}).save_to_disk(str(folder))
    return folder


def _hf_params(folder, **spec):
    from conftest import minimal_params

    from whisperbench import config

    dataset = {"source": "hf", "path": str(folder), "text_column": "sentence", "id_column": "key"}
    dataset |= {"speaker_column": "speaker_id", "max_utterances": 6, **spec}
    return config.validate(minimal_params(datasets={"other": dataset}, timing={"utterances": 3}))


def test_a_hugging_face_dataset_on_disk_becomes_a_manifest_of_flac_clips(hf_folder, sample_root, tmp_path):
    params = _hf_params(hf_folder)
    rows = datasets.manifest_rows("other", params, clips_dir=str(tmp_path / "clips"))
    timed = datasets.timing_rows("other", params, clips_dir=str(tmp_path / "timed"))
    assert len(rows) == 6 and len({row["speaker"] for row in rows}) == 2  # spread over both speakers
    assert {row["id"] for row in timed} <= {row["id"] for row in rows} and len(timed) == 3
    original = {u.utterance_id: u for u in librispeech.read_subset(sample_root / "test-other")}
    for row in rows:
        assert row["reference"] == original[row["id"]].reference.lower() and row["origin"].startswith("hf:")
        assert row["audio_path"].endswith(".flac")
        assert np.allclose(audio.load(row["audio_path"]), audio.load(original[row["id"]].audio_path), atol=1e-4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"text_column": "transcript"}, r"datasets.other.text_column: no column 'transcript' in .*; columns: audio"),
        ({"split": "validation"}, r"datasets.other.split: 'validation' is not in .*; splits: test"),
    ],
)
def test_hugging_face_dataset_mistakes_are_one_line(hf_folder, spec, message):
    with pytest.raises(UserError, match=message):
        datasets.manifest_rows("other", _hf_params(hf_folder, **spec), clips_dir="unused")


def test_a_hub_id_offline_fails_with_one_line():
    # the real unreachable hub (this machine reaches only package registries): ~20 s of datasets' retries
    params = _hf_params("openslr/librispeech_asr", config="clean")
    with pytest.raises(UserError, match=r"datasets.other.path: cannot load 'openslr/librispeech_asr' .*save_to_disk"):
        datasets.manifest_rows("other", params, clips_dir="unused")


def test_hugging_face_keys_are_checked_against_the_source():
    from conftest import minimal_params

    from whisperbench import config

    with pytest.raises(UserError, match=r"datasets.x.path is required for source hf"):
        config.validate(minimal_params(datasets={"x": {"source": "hf"}}))
    with pytest.raises(UserError, match=r"datasets.x.text_column is only for source hf"):
        config.validate(minimal_params(datasets={"x": {"source": "synthetic", "text_column": "t"}}))


@pytest.mark.parametrize("streaming", [False, True])
def test_an_audiofolder_without_torchcodec_says_what_to_do(sample_root, tmp_path, streaming):
    pytest.importorskip("datasets")
    try:
        import torchcodec  # noqa: F401

        pytest.skip("torchcodec works here: datasets can prepare audiofolders")
    except (ImportError, OSError, RuntimeError):
        pass
    clip = next((sample_root / "test-other").rglob("*.flac"))
    (tmp_path / clip.name).write_bytes(clip.read_bytes())
    (tmp_path / "metadata.csv").write_text(f"file_name,text\n{clip.name},some text\n")
    params = _hf_params(
        "audiofolder", data_dir=str(tmp_path), split="train", streaming=streaming, id_column=None, speaker_column=None
    )
    params["datasets"]["other"]["text_column"] = "text"
    with pytest.raises(UserError, match=r"datasets.other.path: datasets needs torchcodec to prepare 'audiofolder'"):
        datasets.manifest_rows("other", params, clips_dir=str(tmp_path / "clips"))
