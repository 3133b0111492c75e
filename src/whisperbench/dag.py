"""The study DAG as data: every step's command, inputs, outputs and params keys.

Both engines come from here. The Snakemake rules (workflow/rules/*.smk) fill the same path
patterns and call the same scripts; `dvc.yaml` is generated (`dvc_stages.render`, this module's CLI) from the
same cells, so the two cannot drift (tests/test_dag.py checks the committed file is current and that
Snakemake plans exactly the outputs dvc.yaml declares).
"""

from __future__ import annotations

from pathlib import Path

from whisperbench.backends import registry
from whisperbench.config import artifacts, cells, exports
from whisperbench.report.plots import FIGURES

# Path patterns shared by both engines ({...} are Snakemake wildcards / DVC ${item.*}).
PATHS = {
    "params_ok": "data/params.ok",
    "corpus": "data/synthetic/corpus",
    "manifest": "data/manifests/{dataset}.jsonl",
    "timing_manifest": "data/manifests/{dataset}.timing.jsonl",
    "clips": "data/clips/{dataset}",
    "timing_clips": "data/clips/{dataset}.timing",
    "calibration": "data/calibration/manifest.jsonl",
    "model": "data/models/{model}",
    "export": "data/exports/{model}/{backend}",
    "artifact": "data/artifacts/{model}/{backend}/{precision}",
    "sensitivity": "results/sensitivity/{model}/{scheme}/sensitivity.json",
    "sensitivity_plot": "results/sensitivity/{model}/{scheme}/sensitivity.{fmt}",
    "hypotheses": "results/{dataset}/{model}/{backend}/{precision}/hypotheses.jsonl",
    "accuracy_run": "results/{dataset}/{model}/{backend}/{precision}/accuracy.json",
    "timings": "results/{dataset}/{model}/{backend}/{precision}/timings.jsonl",
    "timing_run": "results/{dataset}/{model}/{backend}/{precision}/timing.json",
    "metrics": "results/{dataset}/{model}/{backend}/{precision}/metrics.json",
    "summary_csv": "results/summary.csv",
    "summary_md": "results/summary.md",
    "summary_tex": "results/summary.tex",
    "summary_json": "results/summary.json",
    "plots": "results/plots/{plot}.{fmt}",
}
PLOT_NAMES = FIGURES  # report/plots.py draws one figure per name
SCHEMA = "workflow/schemas/params.schema.yaml"
CODE = "src/whisperbench"


def path(name: str, **values) -> str:
    return PATHS[name].format(**values)


def plot_paths(params: dict) -> list[str]:
    return [path("plots", plot=p, fmt=f) for p in PLOT_NAMES for f in params["report"]["plot_formats"]]


def metrics_paths(params: dict) -> list[str]:
    return [path("metrics", **cell.__dict__) for cell in cells(params)]


def hypotheses_paths(params: dict) -> list[str]:
    """Every cell's hypotheses, in the order of metrics_paths (the report pairs them)."""
    return [path("hypotheses", **cell.__dict__) for cell in cells(params)]


def needs_calibration(params: dict) -> bool:
    return bool(exports(params)) or bool(sensitivity_passes(params))


def reads_at_export(backend: str, option: str) -> bool:
    """Whether a backend's export reads an option (`EXPORT_OPTIONS` in its module; every option where it
    names none), so that a recipe's option (a block size, a mix's budget) rebuilds only the precisions."""
    names = getattr(registry.get(backend).load_module(), "EXPORT_OPTIONS", None)
    return names is None or option in names


def export_options(params: dict, backend: str) -> dict:
    """The written options a backend's export reads: the export step's params."""
    written = params["backends"][backend].get("options") or {}
    return {name: value for name, value in written.items() if reads_at_export(backend, name)}


def _scheme(params: dict, model: str, backend: str, precision: str) -> str | None:
    """The 4-bit scheme whose sensitivity pass a precision's mix reads (None: it reads none)."""
    from whisperbench.mixed import plan

    module = registry.get(backend).load_module()
    if not plan.needs_sensitivity(module, precision):
        return None
    options = module.Options.from_params(params["backends"][backend].get("options", {}))
    return module.mixed_scheme(options, precision).name


def sensitivity_passes(params: dict) -> list[tuple[str, str]]:
    """Every (model, scheme) sensitivity pass the mixed precisions need, once per scheme."""
    found = {(m, scheme) for m, b, p in artifacts(params) if (scheme := _scheme(params, m, b, p))}
    return sorted(found)


def sensitivity_inputs(params: dict, model: str, backend: str, precision: str) -> list[str]:
    """The sensitivity record a build reads ([] for every precision but a mix chosen by sensitivity)."""
    scheme = _scheme(params, model, backend, precision)
    return [path("sensitivity", model=model, scheme=scheme)] if scheme else []


def sensitivity_plots(params: dict, model: str, scheme: str) -> list[str]:
    return [path("sensitivity_plot", model=model, scheme=scheme, fmt=f) for f in params["report"]["plot_formats"]]


def uses_synthetic(params: dict) -> bool:
    calibration = needs_calibration(params) and params["calibration"]["source"] == "synthetic"
    return calibration or any(spec["source"] == "synthetic" for spec in params["datasets"].values())


def artifact_source(params: dict, model: str, backend: str) -> str:
    """What a backend's artifacts are built from: its export of the model, or the fetched model."""
    return path("export" if registry.get(backend).exports else "model", model=model, backend=backend)


def main(argv=None) -> None:
    import argparse

    import yaml

    from whisperbench import config, dvc_stages
    from whisperbench.errors import cli
    from whisperbench.io import write_text

    arguments = argparse.ArgumentParser(description="Write dvc.yaml from params.yaml.")
    arguments.add_argument("--params", default="params.yaml")
    arguments.add_argument("--out", default="dvc.yaml")
    arguments = arguments.parse_args(argv)

    @cli
    def run():
        params = config.load(arguments.params)
        raw = yaml.safe_load(Path(arguments.params).read_text())
        write_text(arguments.out, dvc_stages.render(params, raw, arguments.params))

    run()


if __name__ == "__main__":
    main()
