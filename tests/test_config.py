import pytest
from conftest import REPO, minimal_params

from whisperbench import config
from whisperbench.backends import registry
from whisperbench.errors import UserError


def test_default_params_are_valid_and_define_the_study():
    params = config.load(REPO / "params.yaml")
    cells = config.cells(params)
    assert {c.model for c in cells} == {"tiny.en", "base"}
    precisions = {(c.backend, c.precision) for c in cells}
    assert {p for b, p in precisions if b == "pytorch"} == {"fp32", "bf16", "fp16", "int8", "int4"}
    assert {p for b, p in precisions if b == "onnxruntime"} == {"fp32", "fp16", "int8_dynamic", "int8_static", "int4"}
    assert params["calibration"]["subset"] == "dev-clean"
    assert params["decoding"]["num_beams"] == 1 and params["decoding"]["timestamps"] is False


def test_defaults_are_filled_from_the_schema():
    params = config.validate(minimal_params())
    assert params["decoding"]["language"] == "en"
    assert params["librispeech"]["download_dir"] == "data/librispeech"
    assert params["datasets"]["synthetic"]["seed"] == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"modles": ["tiny.en"]},
            "(top level): Additional properties are not allowed ('modles' was unexpected); allowed keys:",
        ),
        ({"timing": {"repeats": "three"}}, "timing.repeats: 'three' is not of type 'integer'"),
        ({"models": ["tinny"]}, "models: unknown model id 'tinny'; known ids: tiny, tiny.en, base"),
        (
            {"accuracy": {"batch_size": 4}},
            "accuracy.batch_size: 4 is larger than datasets.synthetic.max_utterances (3); set it to at most 3",
        ),
        (
            {"timing": {"utterances": 5}},
            "timing.utterances: 5 is larger than datasets.synthetic.max_utterances (3); set it to at most 3",
        ),
        ({"accuracy": {"batch_size": 0}}, "accuracy.batch_size: 0 is less than the minimum of 1"),
        ({"timing": {"utterances": -2}}, "timing.utterances: -2 is less than the minimum of 1"),
        ({"accuracy": {"threads": 0}}, "accuracy.threads: 0 is less than the minimum of 1"),
        ({"report": {"plot_formats": []}}, "report.plot_formats: [] should be non-empty"),
        (
            {"report": {"baseline_precision": "fp16"}},
            "report.baseline_precision: 'fp16' is not a precision of any configured backend; configured: fp32",
        ),
        ({"decoding": {"num_beams": 4}}, "decoding.num_beams: pytorch times each decoder step with a streamer"),
        (
            {"backends": {"pytorch": {"precisions": ["fp32"], "options": {"attn": "sdpa"}}}},
            "backends.pytorch.options: Additional properties are not allowed ('attn' was unexpected); allowed keys: "
            "attn_implementation",
        ),
        (
            {"backends": {"pytorch": {"precisions": ["int3"]}}},
            "backends.pytorch.precisions: 'int3' is not supported by pytorch; supported: fp32, bf16, fp16, int8, "
            "int8_torchao, int4, int4_quanto",
        ),
        (
            {"backends": {"tensorrt": {"precisions": ["fp16"]}}},
            "backends: unknown backend 'tensorrt'; available: pytorch",
        ),
        ({"datasets": {"ls": {"source": "librispeech"}}}, "datasets.ls.subset is required"),
        (
            {"datasets": {"ls": {"source": "librispeech", "subset": "test-dirty"}}},
            "datasets.ls.subset: 'test-dirty' is not allowed; allowed values: test-clean, test-other, dev-clean",
        ),
    ],
)
def test_bad_params_stop_with_one_line_naming_key_value_and_allowed(change, expected):
    with pytest.raises(UserError) as caught:
        config.validate(minimal_params(**change), "params.yaml")
    message = str(caught.value)
    assert message.startswith("params.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_a_local_model_folder_may_have_any_id(tmp_path):
    for name in ("config.json", "preprocessor_config.json", "model.safetensors"):
        (tmp_path / name).write_text("{}")
    params = config.validate(minimal_params(models=["my-finetune"], model_paths={"my-finetune": str(tmp_path)}))
    assert [c.model for c in config.cells(params)] == ["my-finetune"]


def test_unreadable_yaml_is_one_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("models: [tiny.en\n")
    with pytest.raises(UserError, match=r"params.yaml: not valid YAML"):
        config.load(bad)
    with pytest.raises(UserError, match="params file not found"):
        config.load(tmp_path / "missing.yaml")


def test_every_schema_key_has_a_description():
    schema = config.schema()
    assert set(schema["properties"]["backends"]["properties"]) == set(registry.BACKENDS)  # each backend's own file

    def walk(node, where):
        for name, child in node.get("properties", {}).items():
            assert child.get("description"), f"{where}.{name} has no description"
            walk(child, f"{where}.{name}")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{where}.*")

    walk(schema, "params")


def test_a_step_of_one_backend_imports_none_of_the_others_libraries():
    """A pass process's memory is its backend's and its model's: validating params for one cell's backend
    probes only that backend's support on this machine (here whisper.cpp: neither torch nor ctranslate2)."""
    import subprocess
    import sys

    probe = (
        "import sys; from whisperbench import config; config.load('params.yaml', {'whispercpp'}); "
        "print(sorted(m for m in ('torch', 'ctranslate2', 'onnxruntime', 'transformers') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_the_run_record_lists_every_backends_libraries_as_its_module_names_them(monkeypatch):
    import sys
    import types

    from whisperbench.backends import registry
    from whisperbench.metrics import provenance

    versions = provenance.library_versions()
    assert {"torch", "torchao", "onnxruntime", "onnx", "ctranslate2", "coremltools", "pywhispercpp"} <= set(versions)
    toy = types.ModuleType("toy_backend")
    toy.PRECISIONS, toy.LIBRARIES = ("fp32",), ("pyyaml", "not-installed-anywhere")
    monkeypatch.setitem(sys.modules, "toy_backend", toy)
    monkeypatch.setitem(registry.BACKENDS, "toy", registry.BackendSpec("toy", "toy_backend"))
    assert registry.get("toy").precisions == ("fp32",) and not registry.get("toy").exports
    assert set(provenance.library_versions()) - set(versions) == {"pyyaml"}  # absent libraries are left out
