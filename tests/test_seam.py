"""Adding a backend takes its module (with its schema beside it) and one registry entry: a toy backend, written
here and registered for the test, is validated, planned by both engines' DAG, built and run like the others."""

from __future__ import annotations

import sys
import textwrap

import pytest
import yaml
from conftest import TINY_EN_FP32_TEXT, minimal_params

from whisperbench import artifacts, config, dag, dvc_stages
from whisperbench.backends import registry
from whisperbench.backends.base import Decoding
from whisperbench.errors import UserError

TOY_MODULE = '''
"""A toy runtime: the PyTorch backend's fp32 under another name (what a new backend's module provides)."""
from dataclasses import dataclass

from whisperbench.backends import pytorch
from whisperbench.backends.base import BackendOptions

PRECISIONS = ("fp32",)
LIBRARIES = ("torch",)
MAX_AUDIO_S = 30.0


@dataclass(frozen=True)
class Options(BackendOptions):
    threads_hint: int = 1

    def __post_init__(self):
        if self.threads_hint < 1:
            raise ValueError(f"threads_hint: {self.threads_hint!r} is not allowed; allowed: a positive integer")


def unsupported_reason(precision):
    return None


def prepare(source_dir, precision, options, output_dir, context):
    return pytorch.prepare(source_dir, precision, pytorch.Options(), output_dir, context) | {"recipe": "toy"}


def load(artifact_dir, precision, options, decoding, threads):
    return pytorch.load(artifact_dir, precision, pytorch.Options(), decoding, threads)
'''

TOY_SCHEMA = {
    "description": "A toy runtime registered by tests/test_seam.py.",
    "type": "object",
    "additionalProperties": False,
    "required": ["precisions"],
    "properties": {
        "precisions": {"description": "fp32", "type": "array", "items": {"type": "string"}},
        "options": {
            "description": "The toy's options.",
            "type": "object",
            "default": {},
            "properties": {"threads_hint": {"description": "A positive integer.", "type": "integer"}},
        },
    },
}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    package = tmp_path / "toy_backend"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(TOY_MODULE))
    (package / "schema.yaml").write_text(yaml.safe_dump(TOY_SCHEMA))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.BACKENDS, "toy", registry.BackendSpec("toy", "toy_backend", label="TOY"))
    yield "toy"
    sys.modules.pop("toy_backend", None)


def _params(**toy_spec) -> dict:
    return minimal_params(backends={"pytorch": {"precisions": ["fp32"]}, "toy": {"precisions": ["fp32"], **toy_spec}})


def test_a_registered_backend_is_validated_from_its_own_module_and_schema(toy):
    params = config.validate(_params(options={"threads_hint": 2}))
    assert ("tiny.en", "toy", "fp32") in config.artifacts(params)
    assert config.schema()["properties"]["backends"]["properties"]["toy"] == TOY_SCHEMA
    with pytest.raises(UserError, match=r"backends\.toy\.precisions: 'int4' is not supported by toy; supported: fp32"):
        config.validate(_params(precisions=["int4"]))
    with pytest.raises(UserError, match="threads_hint") as error:
        config.validate(_params(options={"threads_hint": 0}))
    assert "\n" not in str(error.value)


def test_both_engines_plan_a_registered_backend(toy):
    params = config.validate(_params())
    raw = yaml.safe_load(yaml.safe_dump(_params()))
    stages = dvc_stages.dvc_yaml(params, raw)
    assert {item["backend"] for item in stages["stages"]["build_artifact_toy"]["foreach"].values()} == {"toy"}
    assert dag.artifact_source(params, "tiny.en", "toy") == dag.path("model", model="tiny.en")  # no export


@pytest.mark.slow
def test_a_registered_backend_builds_and_transcribes_like_the_others(toy, tiny_en_dir, clip, tmp_path):
    params = config.validate(_params())
    record = artifacts.build(tiny_en_dir, "tiny.en", "toy", "fp32", params, tmp_path / "toy-fp32")
    assert record["status"] == "ok" and record["recipe"] == "toy"
    module = registry.get("toy").load_module()
    transcriber = module.load(tmp_path / "toy-fp32", "fp32", module.Options(), Decoding(), 2)
    assert transcriber.transcribe(clip).text == TINY_EN_FP32_TEXT
