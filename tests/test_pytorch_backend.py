import pytest
from conftest import CLIP_REFERENCE, TINY_EN_FP32_TEXT, minimal_params, size_breakdown

from whisperbench import artifacts, config
from whisperbench.backends import pytorch
from whisperbench.backends.base import Decoding
from whisperbench.config import Cell
from whisperbench.errors import UserError
from whisperbench.metrics.score import word_errors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tiny_en_dir, tmp_path_factory):
    params = config.validate(minimal_params(backends={"pytorch": {"precisions": list(BUILT)}}))
    root = tmp_path_factory.mktemp("artifacts")
    return {p: (root / p, artifacts.build(tiny_en_dir, "tiny.en", "pytorch", p, params, root / p)) for p in BUILT}


# every precision but the mix read from a sensitivity record, which tests/test_mixed.py builds from one
BUILT = [p for p in pytorch.PRECISIONS if pytorch.MIXED.get(p) != "sensitivity"]


@pytest.mark.parametrize("precision", BUILT)
def test_each_precision_transcribes_a_real_clip(built, clip, precision):
    folder, record = built[precision]
    transcriber = pytorch.load(folder, precision, pytorch.Options(), Decoding(), threads=2)
    result = transcriber.transcribe(clip)
    if precision == "fp32":
        assert result.text == TINY_EN_FP32_TEXT
    wer = word_errors([{"reference": CLIP_REFERENCE, "hypothesis": result.text}])["wer"]
    assert wer <= 0.5, (precision, result.text)
    assert 0 < result.encoder_ms < result.first_token_ms <= result.total_ms
    assert result.n_tokens >= 8 and result.decode_ms > 0
    assert record["size_bytes"] > 0 and record["precision"] == precision


def test_encoder_ms_includes_the_cross_attention_keys_and_values(built, clip):
    """The cut point every backend shares: the encoder plus each decoder layer's cross-attention K/V
    projections, which transformers computes in the first decoder step and ONNX in encoder.onnx."""
    transcriber = pytorch.load(built["fp32"][0], "fp32", pytorch.Options(), Decoding(), threads=2)
    result = transcriber.transcribe(clip)
    spans = transcriber.encoder_clock.spans
    layers = len(transcriber.model.get_decoder().layers)
    expected = ["encoder"] + [f"decoder.{i}.cross_{kind}" for i in range(layers) for kind in ("k", "v")]
    assert [name for name, _, _ in spans] == expected  # each once, the encoder first, none at later tokens
    encoder_only = (spans[0][2] - spans[0][1]) * 1e3
    assert encoder_only < result.encoder_ms == pytest.approx(transcriber.encoder_clock.ms())
    assert result.encoder_ms < result.first_token_ms


def test_quantized_artifacts_are_smaller_and_name_their_library(built):
    size = {p: record["size_bytes"] for p, (_, record) in built.items()}
    assert size["fp16"] < 0.55 * size["fp32"] and size["bf16"] < 0.55 * size["fp32"]
    assert size["int8"] < size["int8_torchao"] < size["fp32"] and size["int4"] < size["int8_torchao"]
    weights = {p: record["weights_bytes"] for p, (_, record) in built.items()}
    assert 0.95 * size["fp32"] < weights["fp32"] < size["fp32"]  # the processor's files are the rest
    assert all(0 < weights[p] < size[p] for p in size)
    assert built["int8"][1]["library"].startswith("torch ") and "x86" in built["int8"][1]["recipe"]
    assert built["int8_torchao"][1]["library"].startswith("torchao")
    assert built["int4"][1]["library"].startswith("torch ") and "int4" in built["int4"][1]["recipe"]
    assert built["int4_quanto"][1]["library"].startswith("optimum-quanto")


def test_corrupt_artifact_is_detected_not_used(built, tmp_path):
    import shutil

    copy = tmp_path / "fp16"
    shutil.copytree(built["fp16"][0], copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(UserError, match="model.safetensors: missing or corrupt"):
        artifacts.verify(copy)


def test_stored_tensors_account_for_the_weight_files(built):
    groups = {p: size_breakdown(pytorch, folder) for p, (folder, _) in built.items()}
    assert groups["fp32"]["quantized weights"] == 0 and groups["int8_torchao"]["quantized weights"] > 0
    quanto = groups["int4_quanto"]  # the tied token embedding stays fp32: most of the file
    assert quanto["embeddings (float)"] > 0.5 * sum(quanto.values()) > quanto["quantized weights"] > 0
    int4 = groups["int4"]  # float embeddings left: the position tables only (bf16)
    assert int4["embeddings (float)"] < 0.1 * sum(int4.values()) < int4["quantized weights"]


def test_device_cuda_is_rejected_where_torch_cannot_use_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip(f"this machine has a CUDA GPU ({torch.cuda.get_device_name()})")
    params = minimal_params(backends={"pytorch": {"precisions": ["fp32"], "options": {"device": "cuda"}}})
    with pytest.raises(UserError, match=r"backends\.pytorch\.options\.device: cuda.*(CPU build|no CUDA GPU)"):
        config.validate(params)


def test_quantized_cpu_layouts_are_rejected_on_cuda(monkeypatch):
    from whisperbench.backends import pytorch

    monkeypatch.setattr(pytorch, "environment_problem", lambda options: None)  # as on a GPU machine
    params = minimal_params(backends={"pytorch": {"precisions": ["fp16", "int4"], "options": {"device": "cuda"}}})
    with pytest.raises(UserError, match=r"backends\.pytorch\.precisions: int4: int4 artifacts are built for CPU"):
        config.validate(params)


def test_a_batch_cut_at_max_new_tokens_counts_the_tokens_it_has(built, clip):
    """A row without an end-of-text token (cut by max_new_tokens) counts what was generated, as batch 1 does."""
    transcriber = pytorch.load(built["fp32"][0], "fp32", pytorch.Options(), Decoding(max_new_tokens=4), threads=2)
    (batched,) = transcriber.transcribe_batch([clip])
    assert batched.n_tokens == transcriber.transcribe(clip).n_tokens == 4


def test_transcribes_on_a_cuda_gpu_where_there_is_one(built, clip):
    import torch

    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA GPU here (torch {torch.__version__}); runs where torch.cuda.is_available()")
    options = pytorch.Options(device="cuda")
    assert pytorch.environment_problem(options) is None
    transcriber = pytorch.load(built["fp16"][0], "fp16", options, Decoding(), threads=2)
    result = transcriber.transcribe(clip)
    assert transcriber.runtime["device"] == "cuda" and transcriber.runtime["gpu"]
    wer = word_errors([{"reference": CLIP_REFERENCE, "hypothesis": result.text}])["wer"]
    assert wer <= 0.5, result.text
    assert 0 < result.encoder_ms < result.first_token_ms <= result.total_ms


def test_int8_stores_the_tied_embedding_once_in_int8_and_reads_it_back_exactly(built, clip):
    """proj_out is quantized like every Linear and the token embedding reads its rows: no fp32 copy in the file,
    weights within 20 % of params x 8 / 8 (torchao's int8 keeps the 51864 x 384 tied matrix in fp32: 1.5x)."""
    import torch

    from whisperbench.backends.pytorch import int8

    folder, record = built["int8"]
    stored = pytorch.stored_tensors(folder)
    vocab, width = 51864, 384
    assert not [t for t in stored if t.shape == (vocab, width) and t.dtype.startswith("float")]
    assert [t.dtype for t in stored if t.shape == (vocab, width)] == ["int8"]  # proj_out's weight, once
    params = built["fp32"][1]["weights_bytes"] / 4
    assert record["weights_bytes"] < 1.2 * params < built["int8_torchao"][1]["weights_bytes"]
    transcriber = pytorch.load(folder, "int8", pytorch.Options(), Decoding(), threads=2)
    ids = torch.tensor([[50257, 383, 13, 50256]])
    projection = transcriber.model.proj_out.weight().dequantize()
    assert torch.equal(transcriber.model.model.decoder.embed_tokens(ids), projection[ids])
    assert transcriber.runtime["int8_activation_bits"] == (8 if int8.full_range_activations() else 7)
    text = transcriber.transcribe(clip).text  # fp32's has 2 errors in 8 words
    assert word_errors([{"reference": CLIP_REFERENCE, "hypothesis": text}])["wer"] <= 0.25, text


def test_int8_decodes_one_utterance_at_a_time_in_the_accuracy_pass():
    """Its activations are quantized per tensor: in a batch, each utterance's range would depend on the others."""
    from whisperbench.evaluate import batch_size_of

    params = config.validate(minimal_params(backends={"pytorch": {"precisions": ["fp32", "int8"]}}))
    assert batch_size_of(Cell("d", "tiny.en", "pytorch", "int8"), params) == (1, pytorch.batch_reason("int8"))
    assert batch_size_of(Cell("d", "tiny.en", "pytorch", "fp32"), params)[1] is None


def test_int4_stores_the_tied_embedding_once_in_4_bits_and_reads_it_back_exactly(built, clip):
    """Every Linear and proj_out at 4 bits, the token embedding reading proj_out's nibbles: weights within 25 %
    of params x 4 / 8 (bf16 scales per 32 values, bf16 convolutions and positions: 1.22x for tiny.en)."""
    import torch

    from whisperbench.backends.pytorch import int4

    folder, record = built["int4"]
    stored = pytorch.stored_tensors(folder)
    vocab, width = 51864, 384
    assert sorted((t.dtype, t.shape) for t in stored if t.shape[0] == vocab) == [
        ("bfloat16", (vocab, width // 32)),  # proj_out's scales
        ("uint8", (vocab, width // 2)),  # its nibbles, once
    ]
    params = built["fp32"][1]["weights_bytes"] / 4
    assert record["weights_bytes"] < 1.25 * params * 4 / 8
    transcriber = pytorch.load(folder, "int4", pytorch.Options(), Decoding(), threads=2)
    ids = torch.tensor([[50257, 383, 13, 50256]])
    projection = transcriber.model.proj_out
    identity = torch.eye(width, dtype=torch.bfloat16)
    rows = projection(identity).t()  # the kernel's own weights: W^T of the identity, [vocab, width]
    assert torch.equal(transcriber.model.model.decoder.embed_tokens(ids), rows[ids])
    nibbles, scales = int4.quantize_weight(torch.randn(48, 64), 32)  # 48 outputs: padded to 64 for the kernel
    layer = int4._linear_class()(nibbles, scales, torch.zeros(48), 32)
    dequantized = (int4.unpack(nibbles).float() - 8).reshape(48, 2, 32) * scales.float().unsqueeze(-1)
    inputs = torch.randn(3, 64).to(torch.bfloat16)
    expected = inputs.float() @ dequantized.reshape(48, 64).t()
    torch.testing.assert_close(layer(inputs).float(), expected, rtol=0.02, atol=0.05)


def test_compile_keeps_the_transcript_and_the_cut_point_and_times_compilation_apart(built, clip):
    """torch.compile at load: compilation happens there (recorded as compile_s), transcripts stay fp32's, and the
    encoder clock still sees the encoder and every cross-attention K/V projection once per utterance."""
    transcriber = pytorch.load(built["fp32"][0], "fp32", pytorch.Options(compile=True), Decoding(), threads=2)
    assert transcriber.runtime["compile_s"] > 0 and "inductor" in transcriber.runtime["compiled"]
    result = transcriber.transcribe(clip)
    assert result.text == TINY_EN_FP32_TEXT
    layers = len(transcriber.model.get_decoder().layers)
    expected = ["encoder"] + [f"decoder.{i}.cross_{kind}" for i in range(layers) for kind in ("k", "v")]
    assert [name for name, _, _ in transcriber.encoder_clock.spans] == expected
    assert 0 < result.encoder_ms < result.first_token_ms


def test_compile_takes_a_boolean():
    params = minimal_params(backends={"pytorch": {"precisions": ["fp32"], "options": {"compile": "yes"}}})
    with pytest.raises(UserError, match=r"backends\.pytorch\.options.*compile 'yes' is not one of: true, false"):
        config.validate(params)
