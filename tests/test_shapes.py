"""Every backend at a large-v3-shaped model's shapes (128 mel bins, 51866 tokens, sharded weights in a local
folder), and every backend's forced-length decoding (random weights' timing pass)."""

import pytest
from conftest import CLIP_ID, minimal_params

from whisperbench import artifacts, config
from whisperbench.backends import registry
from whisperbench.config import Cell
from whisperbench.evaluate import load_transcriber
from whisperbench.io import write_jsonl
from whisperbench.models import architectures, fetch, random_weights

# large-v3's vocabulary and mel bins at a width that builds in seconds
SHRUNK_V3 = architectures.Architecture(64, 2, 2, 2, num_mel_bins=128, vocab_size=51866)
ONNX = {"precisions": ["int4"]}
BUILDS = {"pytorch": "fp32", "onnxruntime": "fp32", "coreml": "fp32", "ctranslate2": "fp32", "whispercpp": "f16"}


def _params(folder):
    backends = {name: {"precisions": [precision]} for name, precision in BUILDS.items()}
    return config.validate(
        minimal_params(models=["large-v3"], model_paths={"large-v3": str(folder)}, backends=backends)
    )


@pytest.fixture(scope="module")
def v3_model(tmp_path_factory, monkeypatch_module):
    """A local folder in large-v3's layout (fp16 shards and their index), with random weights."""
    monkeypatch_module.setitem(random_weights.ARCHITECTURES, "large-v3", SHRUNK_V3)
    folder = tmp_path_factory.mktemp("large-v3-local")
    random_weights.write("large-v3", folder, seed=0, max_shard_size="2MB")
    model_dir = tmp_path_factory.mktemp("fetched") / "large-v3"
    fetch.fetch("large-v3", _params(folder), model_dir)
    return folder, model_dir


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_a_local_large_v3_folder_is_fetched_in_place_as_random_weights(v3_model):
    folder, model_dir = v3_model
    source = fetch.read_source(model_dir)
    assert source["source"] == "local" and fetch.hf_dir(model_dir) == folder.resolve()
    assert fetch.is_random(source) and source["stored_dtypes"] == ["float16"]
    assert len(source["weights_sha256"]) > 1 and (folder / "model.safetensors.index.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(BUILDS))
def test_every_backend_builds_128_mel_models_and_decodes_forced_lengths(backend, v3_model, clip, sample_root, tmp_path):
    _, model_dir = v3_model
    params, precision = _params(v3_model[0]), BUILDS[backend]
    source = fetch.hf_dir(model_dir)
    if registry.get(backend).exports:
        speaker, chapter, _ = CLIP_ID.split("-")
        rows = [
            {
                "id": CLIP_ID,
                "audio_path": str(sample_root / "test-clean" / speaker / chapter / f"{CLIP_ID}.flac"),
                "reference": "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM",
            }
        ]
        write_jsonl(tmp_path / "calibration.jsonl", rows)
        source = tmp_path / "export"
        record = artifacts.export(model_dir, "large-v3", backend, params, tmp_path / "calibration.jsonl", source)
        assert record["check"]["identical_transcripts"] == 1  # at the reference's forced length
    built = artifacts.build(
        source if registry.get(backend).exports else model_dir,
        "large-v3",
        backend,
        precision,
        params,
        tmp_path / "artifact",
    )
    assert built["status"] == "ok", built.get("reason")
    transcriber = load_transcriber(Cell("clip", "large-v3", backend, precision), params, tmp_path / "artifact", 2)
    for length in (2, 7, 23):
        assert transcriber.transcribe(clip, length).n_tokens == length
    normal = transcriber.transcribe(clip)  # random weights rarely end by themselves: up to max_new_tokens
    assert 1 <= normal.n_tokens <= params["decoding"]["max_new_tokens"]


@pytest.mark.slow
def test_onnx_graphs_past_the_size_threshold_keep_external_data_in_every_recipe(v3_model, clip, sample_root, tmp_path):
    """The 2 GB protobuf limit, lowered to 100 kB: the export and every recipe write, copy and load .data files."""
    from whisperbench.backends.onnxruntime import graphs

    _, model_dir = v3_model
    precisions = ["fp32", "fp16", "int8_dynamic", "int8_static", "int4"]
    params = config.validate(
        minimal_params(
            models=["large-v3"],
            model_paths={"large-v3": str(v3_model[0])},
            backends={"onnxruntime": {"precisions": precisions, "options": {"calibration_utterances": 1}}},
        )
    )
    speaker, chapter, _ = CLIP_ID.split("-")
    audio = sample_root / "test-clean" / speaker / chapter / f"{CLIP_ID}.flac"
    write_jsonl(tmp_path / "calibration.jsonl", [{"id": "c", "audio_path": str(audio), "reference": "STUFF IT"}])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(graphs, "EXTERNAL_DATA_BYTES", 100_000)
        export = tmp_path / "export"
        artifacts.export(model_dir, "large-v3", "onnxruntime", params, tmp_path / "calibration.jsonl", export)
        assert {"encoder.onnx.data", "decoder.onnx.data"} <= set(artifacts.verify(export, full=True)["files"])
        for precision in precisions:
            output = tmp_path / precision
            record = artifacts.build(export, "large-v3", "onnxruntime", precision, params, output)
            assert record["status"] == "ok", (precision, record.get("reason"))
            assert "decoder.onnx.data" in record["files"], precision  # the decoder's embedding alone is 6.6 MB
            cell = Cell("clip", "large-v3", "onnxruntime", precision)
            assert load_transcriber(cell, params, output, 2).transcribe(clip, 5).n_tokens == 5


def test_a_build_that_would_not_fit_in_memory_fails_with_the_memory_it_needs(tiny_en_dir, tmp_path, monkeypatch):
    """Checked before the step runs (from the backend's measured peak per parameter), so nothing is killed."""
    from whisperbench.backends import onnxruntime, pytorch

    monkeypatch.setattr(pytorch, "BUILD_MEMORY", {"fp32": (500, 1e6)}, raising=False)
    monkeypatch.setattr(onnxruntime, "BUILD_MEMORY", {"export": (500, 1e6)}, raising=False)
    params = config.validate(minimal_params(backends={"pytorch": {"precisions": ["fp32"]}, "onnxruntime": ONNX}))
    record = artifacts.build(tiny_en_dir, "tiny.en", "pytorch", "fp32", params, tmp_path / "pt")
    assert record["status"] == "failed" and set(record["files"]) == set()
    assert record["reason"].startswith("the pytorch fp32 step needs about 37760.8 GB of memory for 38 M parameters")
    write_jsonl(tmp_path / "calibration.jsonl", [])
    export = artifacts.export(
        tiny_en_dir, "tiny.en", "onnxruntime", params, tmp_path / "calibration.jsonl", tmp_path / "e"
    )
    assert export["status"] == "failed" and "onnxruntime export step needs about" in export["reason"]
    built = artifacts.build(tmp_path / "e", "tiny.en", "onnxruntime", "int4", params, tmp_path / "int4")
    assert built["status"] == "failed" and built["reason"].startswith("the onnxruntime export failed: the onnxrun")


def test_a_build_the_disk_cannot_hold_stops_with_its_size_and_leaves_no_artifact(tiny_en_dir, tmp_path, monkeypatch):
    """Refused before it starts (from the artifact sizes the backend measured), and one that fills the disk
    anyway names the step and what it had written; neither leaves a folder, and neither is cached as failed."""
    import errno

    from whisperbench.backends import pytorch
    from whisperbench.errors import UserError

    params = config.validate(minimal_params(backends={"pytorch": {"precisions": ["fp32"]}}))
    monkeypatch.setattr(pytorch, "BUILD_DISK", {"fp32": (4, 1e9)})
    with pytest.raises(
        UserError, match=r"tiny.en/pytorch/fp32 build: the pytorch fp32 step writes about 37760256.0 GB for 38 M"
    ):
        artifacts.build(tiny_en_dir, "tiny.en", "pytorch", "fp32", params, tmp_path / "pt")
    monkeypatch.setattr(pytorch, "BUILD_DISK", {})

    def fill_the_disk(source, precision, options, out, context):
        (out / "half.bin").write_bytes(b"0" * 3_000_000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pytorch, "prepare", fill_the_disk)
    with pytest.raises(UserError, match=r"fp32 build: the disk filled up after the step had written 0.00 GB"):
        artifacts.build(tiny_en_dir, "tiny.en", "pytorch", "fp32", params, tmp_path / "pt")
    assert list(tmp_path.iterdir()) == []


def test_a_large_build_step_runs_alone_and_small_ones_together(tmp_path, monkeypatch):
    """Parallel jobs never add two large peaks: a step predicted above a quarter of the memory holds the
    machine's build lock alone; small steps share it."""
    import fcntl

    from whisperbench.backends import pytorch

    monkeypatch.setattr(artifacts, "MEMORY_LOCK", tmp_path / "lock")
    monkeypatch.setattr(pytorch, "BUILD_MEMORY", {"fp32": (10, 1e5), "int8": (10, 1.0)})

    def other_step_may_start() -> bool:
        with open(tmp_path / "lock", "a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

    with artifacts.memory_slot("pytorch", "fp32", 38_000_000):
        assert not other_step_may_start()
    with artifacts.memory_slot("pytorch", "int8", 38_000_000):
        assert other_step_may_start()
    assert other_step_may_start()


def test_an_unchanged_artifact_is_verified_without_reading_its_files(tmp_path, monkeypatch):
    """Sizes and times only while nothing changed since sealing; every sha256 again once a file was touched."""
    import os

    from whisperbench import io

    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"x" * 1000)
    artifacts._seal(folder, {"status": "ok"})
    hashed = []
    monkeypatch.setattr(artifacts, "sha256_file", lambda path: hashed.append(path) or io.sha256_file(path))
    assert artifacts.verify(folder)["status"] == "ok" and hashed == []
    assert artifacts.verify(folder, full=True) and len(hashed) == 1
    later = (folder / "artifact.json").stat().st_mtime + 5
    os.utime(folder / "weights.bin", (later, later))  # same bytes, newer time: hashed, and still intact
    assert artifacts.verify(folder) and len(hashed) == 2
    (folder / "weights.bin").write_bytes(b"y" * 1000)
    os.utime(folder / "weights.bin", (later, later))
    with pytest.raises(Exception, match="missing or corrupt"):
        artifacts.verify(folder)


@pytest.mark.slow
def test_pytorch_runs_one_decoder_pass_per_clip_when_the_model_emits_timestamp_tokens(v3_model, clip, tmp_path):
    """transformers' short-form loop took a timestamp token for a segment's end and re-ran encoder and decoder
    from there (random weights did, 5 times a clip): one pass per clip, as every backend decodes."""
    _, model_dir = v3_model
    params = _params(v3_model[0])
    built = artifacts.build(model_dir, "large-v3", "pytorch", "fp32", params, tmp_path / "artifact")
    assert built["status"] == "ok", built.get("reason")
    transcriber = load_transcriber(Cell("clip", "large-v3", "pytorch", "fp32"), params, tmp_path / "artifact", 2)
    timestamp = transcriber.model.generation_config.no_timestamps_token_id + 1 + 150  # <|3.00|>

    def favour_the_timestamp(_module, _inputs, logits):
        logits[..., timestamp] += 1e4
        return logits

    transcriber.model.proj_out.register_forward_hook(favour_the_timestamp)
    result = transcriber.transcribe(clip, 7)
    encoder_runs = [name for name, _, _ in transcriber.encoder_clock.spans if name == "encoder"]
    assert result.n_tokens == 7 and len(encoder_runs) == 1
    hypotheses = transcriber.transcribe_batch([clip, clip])
    encoder_runs = [name for name, _, _ in transcriber.encoder_clock.spans if name == "encoder"]
    assert len(encoder_runs) == 1 and [h.n_tokens for h in hypotheses] == [params["decoding"]["max_new_tokens"]] * 2
