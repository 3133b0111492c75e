"""The one study config (params.yaml): schema checks, semantic checks, and the cells it defines.

Every problem stops the run before any work with one line naming the key, the bad value and
what is allowed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from whisperbench.errors import UserError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"


@dataclass(frozen=True, order=True)
class Cell:
    """One measured combination; its results live under <results>/<dataset>/<model>/<backend>/<precision>/."""

    dataset: str
    model: str
    backend: str
    precision: str

    @property
    def path(self) -> str:
        return f"{self.dataset}/{self.model}/{self.backend}/{self.precision}"


def _key_path(error) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _describe(error) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {', '.join(allowed)}" if allowed else error.message
    if error.validator == "enum":
        return f"{error.instance!r} is not allowed; allowed values: {', '.join(map(str, error.validator_value))}"
    return error.message


def _validator_with_defaults(schema: dict):
    """A jsonschema validator that also fills in the schema's defaults (as Snakemake's validate does)."""
    from jsonschema import Draft202012Validator, validators

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)


def schema() -> dict:
    """The params schema: workflow/schemas/params.schema.yaml with each registered backend's own schema under
    `backends` (its module's schema.yaml), so that a backend's keys are described where it is written."""
    from whisperbench.backends import registry

    composed = yaml.safe_load(SCHEMA_PATH.read_text())
    composed["properties"]["backends"]["properties"] = {
        name: yaml.safe_load(spec.schema_path().read_text()) for name, spec in registry.BACKENDS.items()
    }
    return composed


def check_schema(params: dict, source: str) -> dict:
    """Validate against the schema and return a copy with defaults filled in."""
    filled = copy.deepcopy(params)
    errors = sorted(_validator_with_defaults(schema()).iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise UserError(f"{source}: {_key_path(first)}: {_describe(first)}")
    return filled


HF_KEYS = {
    "config": None,
    "split": "test",
    "data_dir": None,
    "audio_column": "audio",
    "text_column": "text",
    "id_column": None,
    "speaker_column": None,
    "streaming": False,
}


def _check_datasets(params: dict, source: str) -> None:
    for name, dataset in params["datasets"].items():
        if dataset["source"] == "librispeech" and "subset" not in dataset:
            raise UserError(
                f"{source}: datasets.{name}.subset is required for source librispeech; "
                "allowed values: test-clean, test-other, dev-clean, dev-other"
            )
        misplaced = sorted((set(HF_KEYS) | {"path"}) & set(dataset)) if dataset["source"] != "hf" else []
        if misplaced:
            raise UserError(f"{source}: datasets.{name}.{misplaced[0]} is only for source hf")
        if dataset["source"] == "hf":
            if "path" not in dataset:
                raise UserError(f"{source}: datasets.{name}.path is required for source hf (a hub id or a folder)")
            for key, default in HF_KEYS.items():  # filled here, so other sources' params stay as written
                dataset.setdefault(key, default)


def _check_sample_sizes(params: dict, source: str) -> None:
    """A batch or timed subset larger than a dataset's requested size is a mistake in the params."""
    for name, dataset in params["datasets"].items():
        size = dataset["max_utterances"]
        for key, value in (
            ("accuracy.batch_size", params["accuracy"]["batch_size"]),
            ("timing.utterances", params["timing"]["utterances"]),
        ):
            if size is not None and value > size:
                raise UserError(
                    f"{source}: {key}: {value} is larger than datasets.{name}.max_utterances ({size}); "
                    f"set it to at most {size}"
                )


def _check_calibration(params: dict, source: str) -> None:
    calibration = params["calibration"]
    if calibration["source"] != "librispeech":
        return
    if "subset" not in calibration:
        raise UserError(f"{source}: calibration.subset is required for source librispeech; e.g. dev-clean")
    evaluated = {d["subset"] for d in params["datasets"].values() if d["source"] == "librispeech"}
    if calibration["subset"] in evaluated:
        raise UserError(
            f"{source}: calibration.subset: {calibration['subset']} is also evaluated (datasets); calibrate on "
            "utterances never evaluated, e.g. dev-clean"
        )


def _check_models(params: dict, source: str) -> None:
    from whisperbench.models.fetch import check_hf_folder
    from whisperbench.models.registry import MODELS

    for model in params["models"]:
        if model not in MODELS and model not in params["model_paths"]:
            raise UserError(
                f"{source}: models: unknown model id {model!r}; known ids: {', '.join(MODELS)} "
                f"(or give a local folder as model_paths.{model})"
            )
        if model in params["model_paths"]:
            try:
                check_hf_folder(Path(params["model_paths"][model]).expanduser(), f"model_paths.{model}")
            except UserError as error:
                raise UserError(f"{source}: {error}") from None


def model_config(model: str, params: dict) -> dict:
    """The model's config.json as a dict: a local folder's own, else its published architecture's."""
    import json

    from whisperbench.models.architectures import ARCHITECTURES

    if model in params["model_paths"]:
        return json.loads((Path(params["model_paths"][model]).expanduser() / "config.json").read_text())
    return ARCHITECTURES[model].config_fields() | {"tie_word_embeddings": True}


def _check_model_shapes(params: dict, source: str) -> None:
    """A model a configured backend cannot convert or run (its `model_problem` hook) stops here."""
    from whisperbench.backends import registry

    modules = {name: registry.get(name).load_module() for name in params["backends"]}
    hooks = {name: module.model_problem for name, module in modules.items() if hasattr(module, "model_problem")}
    for model in params["models"] if hooks else ():
        model_settings = model_config(model, params)
        for name, hook in hooks.items():
            if problem := hook(model_settings):
                raise UserError(f"{source}: models: {model}: backend {name} cannot run it: {problem}")


def _check_backends(params: dict, source: str, machine_checks: set[str] | None) -> None:
    """Each backend's options and precisions; this machine's support for them (kernels, compute types,
    devices: these import the backend's libraries) for the backends in `machine_checks` (None: all)."""
    from whisperbench.backends import registry

    for name, backend in params["backends"].items():
        if name not in registry.BACKENDS:
            raise UserError(f"{source}: backends: unknown backend {name!r}; available: {', '.join(registry.BACKENDS)}")
        spec = registry.BACKENDS[name]
        try:
            options = spec.options_class().from_params(backend.get("options", {}))
        except (TypeError, ValueError) as error:
            raise UserError(f"{source}: backends.{name}.options: {error}") from None
        on_this_machine = machine_checks is None or name in machine_checks
        _check_backend_hooks(spec, options, params, source, on_this_machine)
        for precision in backend["precisions"]:
            _check_precision(spec, options, precision, f"{source}: backends.{name}.precisions", on_this_machine)


def _check_precision(spec, options, precision: str, where: str, on_this_machine: bool) -> None:
    """One precision of a backend: one it names but cannot build (e.g. a mix its format cannot hold), one it
    does not know, one this machine cannot run, one these options cannot run."""
    module = spec.load_module()
    if reason := getattr(module, "UNMIXABLE", {}).get(precision):
        raise UserError(f"{where}: {precision}: {reason}; its precisions: {', '.join(spec.precisions)}")
    if precision not in spec.precisions:
        raise UserError(
            f"{where}: {precision!r} is not supported by {spec.name}; supported: {', '.join(spec.precisions)}"
        )
    reason = spec.unsupported_reason(precision) if on_this_machine else None
    if reason:
        raise UserError(f"{where}: {precision} cannot run here: {reason}")
    # a precision the chosen options cannot run (e.g. a CPU-only quantized layout on device cuda)
    if hasattr(module, "precision_problem") and (problem := module.precision_problem(precision, options)):
        raise UserError(f"{where}: {precision}: {problem}")


def _check_backend_hooks(spec, options, params: dict, source: str, on_this_machine: bool) -> None:
    """A backend's own checks of the decoding rules and of this machine (e.g. a CUDA provider)."""
    module = spec.load_module()
    if hasattr(module, "decoding_problem") and (problem := module.decoding_problem(params["decoding"])):
        raise UserError(f"{source}: {problem} (backend {spec.name})")
    if not on_this_machine:
        return
    if hasattr(module, "environment_problem") and (problem := module.environment_problem(options)):
        raise UserError(f"{source}: backends.{spec.name}.options.{problem}")


def _check_mixes(params: dict, source: str) -> None:
    """A mixed precision's budget must be reachable for every model (the range named where it is not)."""
    from whisperbench.backends import registry
    from whisperbench.mixed import plan

    for name, backend in params["backends"].items():
        module = registry.get(name).load_module()
        if not any(plan.is_mixed(module, precision) for precision in backend["precisions"]):
            continue
        options = module.Options.from_params(backend.get("options", {}))
        for model in params["models"]:
            if problem := plan.budget_problem(module, options, model, model_config(model, params)):
                raise UserError(f"{source}: backends.{name}.options.{problem}")


def _check_report(params: dict, source: str) -> None:
    baseline = params["report"]["baseline_precision"]
    configured = sorted({p for backend in params["backends"].values() for p in backend["precisions"]})
    if baseline not in configured:
        raise UserError(
            f"{source}: report.baseline_precision: {baseline!r} is not a precision of any configured backend; "
            f"configured: {', '.join(configured)}"
        )


def validate(params: dict, source: str = "params.yaml", machine_checks: set[str] | None = None) -> dict:
    """Schema + semantic checks; returns the params with defaults filled in. `machine_checks`: the backends
    whose support on this machine to probe (None: every configured one; a step of one cell probes its own,
    so its process holds only that backend's libraries)."""
    if not isinstance(params, dict):
        raise UserError(f"{source}: expected a mapping of keys at the top level")
    filled = check_schema(params, source)
    _check_datasets(filled, source)
    _check_sample_sizes(filled, source)
    _check_calibration(filled, source)
    _check_models(filled, source)
    _check_backends(filled, source, machine_checks)
    _check_model_shapes(filled, source)
    _check_mixes(filled, source)
    _check_report(filled, source)
    return filled


def load(path: str | Path, machine_checks: set[str] | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: params file not found; copy params.yaml or pass --params PATH")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    return validate(params, str(path), machine_checks)


def cells(params: dict) -> list[Cell]:
    """Every (dataset, model, backend, precision) the params ask for, in a stable order."""
    return sorted(
        Cell(dataset, model, backend, precision)
        for dataset in params["datasets"]
        for model in params["models"]
        for backend, spec in params["backends"].items()
        for precision in spec["precisions"]
    )


def exports(params: dict) -> list[tuple[str, str]]:
    """Every (model, backend) export: one per model for each backend that exports before building."""
    from whisperbench.backends import registry

    exporting = [name for name in params["backends"] if registry.get(name).exports]
    return sorted((model, backend) for model in params["models"] for backend in exporting)


def artifacts(params: dict) -> list[tuple[str, str, str]]:
    """Every (model, backend, precision) artifact the cells need, built once for all datasets."""
    return sorted({(cell.model, cell.backend, cell.precision) for cell in cells(params)})


def accuracy_threads(backend: str, params: dict) -> int:
    """Threads of a cell's accuracy pass: `accuracy.threads`, or `timing.threads` where threads change numerics."""
    from whisperbench.backends import registry

    which = "timing" if registry.get(backend).threads_change_numerics else "accuracy"
    return params[which]["threads"]
