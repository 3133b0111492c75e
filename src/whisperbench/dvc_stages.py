"""dvc.yaml from the DAG as data (dag.py): one stage per step, its command (the script the Snakemake rule
calls), dependencies, outputs and the params keys it tracks; `render` writes the file
(`python -m whisperbench.dag`)."""

from __future__ import annotations

from functools import partial

from whisperbench.backends import registry
from whisperbench.config import artifacts, cells, exports
from whisperbench.dag import (
    CODE,
    PATHS,
    SCHEMA,
    artifact_source,
    hypotheses_paths,
    metrics_paths,
    needs_calibration,
    path,
    plot_paths,
    reads_at_export,
    sensitivity_inputs,
    sensitivity_passes,
    uses_synthetic,
)


def _dvc(template: str) -> str:
    """A path pattern with DVC foreach placeholders."""
    return template.replace("{", "${item.").replace("${item.${item.", "${item.")


def _present(raw: dict, *keys: str) -> list[str]:
    """Params keys DVC should track, limited to those written in the file (DVC fails on absent keys)."""
    found = []
    for key in keys:
        node = raw
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found.append(key)
    return found


def _script(name: str, params_file: str) -> str:
    """How both engines call a script (progress bars go to the console, the log gets the messages)."""
    return f"python scripts/{name}.py --params {params_file}"


def _stage(cmd: str, deps: list[str], outs: list, params: list[str], **extra) -> dict:
    stage = {"cmd": cmd, "deps": deps}
    if params:
        stage["params"] = params
    stage["outs"] = outs
    stage.update(extra)
    return stage


def _data_stages(params: dict, raw: dict, params_file: str) -> dict:
    stages = {
        "validate": _stage(
            f"{_script('validate_params', params_file)} --dvc-yaml dvc.yaml --out {path('params_ok')} "
            "--log logs/validate.log",
            [params_file, SCHEMA, f"{CODE}/config.py", f"{CODE}/dag.py", f"{CODE}/backends"],
            [{path("params_ok"): {"cache": False}}],
            [],
        )
    }
    if uses_synthetic(params):
        stages["synthesize"] = _stage(
            f"{_script('synthesize', params_file)} --out {path('corpus')} --log logs/synthesize.log",
            [path("params_ok"), "scripts/synthesize.py", f"{CODE}/data/synthetic.py", f"{CODE}/data/sentences.txt"],
            [path("corpus")],
            _present(raw, "synthetic"),
        )
    stages |= _manifest_stages(params, raw, params_file, "manifest", "", ("datasets", "librispeech"))
    timing_keys = ("datasets", "librispeech", "timing.utterances")
    stages |= _manifest_stages(params, raw, params_file, "timing_manifest", "timing", timing_keys)
    if needs_calibration(params):
        stages["calibration"] = _calibration_stage(params, raw, params_file)
    return stages


def _manifest_stages(params: dict, raw: dict, params_file: str, stage: str, subset: str, keys: tuple) -> dict:
    """One foreach stage over the datasets read in place, and one (`hf_` prefixed) over the Hugging Face
    datasets, whose stage also writes the chosen clips to a folder. `subset` is "" or "timing"."""
    manifest, clips = (f"{subset}_manifest", f"{subset}_clips") if subset else ("manifest", "clips")
    option, suffix = (f" --{subset}", f".{subset}") if subset else ("", "")
    stages = {}
    for hf in (False, True):
        items = {
            name: {"dataset": name, "corpus": f" --corpus {path('corpus')}" if spec["source"] == "synthetic" else ""}
            for name, spec in params["datasets"].items()
            if (spec["source"] == "hf") == hf
        }
        if not items:
            continue
        clip_option = f" --clips {_dvc(PATHS[clips])}" if hf else ""
        corpus = [path("corpus")] if uses_synthetic(params) and not hf else []
        stages[f"hf_{stage}" if hf else stage] = {
            "foreach": items,
            "do": _stage(
                f"{_script('make_manifest', params_file)} --dataset ${{item.dataset}}{option}${{item.corpus}}"
                f"{clip_option} --out {_dvc(PATHS[manifest])} --log logs/manifest/${{item.dataset}}{suffix}.log",
                [path("params_ok"), *corpus, "scripts/make_manifest.py", f"{CODE}/data"],
                [_dvc(PATHS[manifest])] + ([_dvc(PATHS[clips])] if hf else []),
                _present(raw, *keys),
            ),
        }
    return stages


def _calibration_stage(params: dict, raw: dict, params_file: str) -> dict:
    synthetic = params["calibration"]["source"] == "synthetic"
    corpus = f" --corpus {path('corpus')}" if synthetic else ""
    return _stage(
        f"{_script('make_manifest', params_file)} --calibration{corpus} --out {path('calibration')} "
        "--log logs/manifest/calibration.log",
        [path("params_ok")] + ([path("corpus")] if synthetic else []) + ["scripts/make_manifest.py", f"{CODE}/data"],
        [path("calibration")],
        _present(raw, "calibration", "librispeech"),
    )


def _model_stages(params: dict, raw: dict, params_file: str) -> dict:
    return {
        "fetch_model": {
            "foreach": {model: {"model": model} for model in params["models"]},
            "do": _stage(
                f"{_script('fetch_model', params_file)} --model ${{item.model}} --out {_dvc(PATHS['model'])} "
                "--log logs/fetch_model/${item.model}.log",
                [path("params_ok"), "scripts/fetch_model.py", f"{CODE}/models"],
                [{_dvc(PATHS["model"]): {"persist": False}}],
                _present(raw, "model_source", "model_paths", "random_weights_seed"),
            ),
        },
        **_export_stage(params, raw, params_file),
        **_sensitivity_stage(params, raw, params_file),
        **_build_stages(params, raw, params_file),
    }


def _build_stages(params: dict, raw: dict, params_file: str) -> dict:
    """`build_artifact_<backend>`; a mix chosen by sensitivity in `build_mixed_<backend>` (its record a dep)."""
    items = {
        f"{m}-{b}-{p}": {"model": m, "backend": b, "precision": p, "source": artifact_source(params, m, b)}
        | ({"sensitivity": inputs[0]} if (inputs := sensitivity_inputs(params, m, b, p)) else {})
        for m, b, p in artifacts(params)
    }

    def stage(backend: str, mixed: bool) -> dict:
        option = " --sensitivity ${item.sensitivity}" if mixed else ""
        return _stage(
            f"{_script('build_artifact', params_file)} --model-dir ${{item.source}} --model ${{item.model}} "
            f"--backend ${{item.backend}} --precision ${{item.precision}} --out {_dvc(PATHS['artifact'])}{option} "
            "--log logs/build_artifact/${item.model}/${item.backend}/${item.precision}.log",
            ["${item.source}"]
            + (["${item.sensitivity}"] if mixed else [])
            + ["scripts/build_artifact.py", f"{CODE}/backends", f"{CODE}/artifacts.py"]
            + ([f"{CODE}/mixed"] if mixed else []),
            [_dvc(PATHS["artifact"])],
            _present(raw, "decoding", f"backends.{backend}.options"),
        )

    plain = {name: item for name, item in items.items() if "sensitivity" not in item}
    mixed = {name: item for name, item in items.items() if "sensitivity" in item}
    return {
        **_per_backend("build_artifact", _by_backend(plain), partial(stage, mixed=False)),
        **_per_backend("build_mixed", _by_backend(mixed), partial(stage, mixed=True)),
    }


def _sensitivity_stage(params: dict, raw: dict, params_file: str) -> dict:
    passes = sensitivity_passes(params)
    if not passes:
        return {}
    plots = [PATHS["sensitivity_plot"].replace("{fmt}", fmt) for fmt in params["report"]["plot_formats"]]
    return {
        "sensitivity": {
            "foreach": {f"{m}-{scheme}": {"model": m, "scheme": scheme} for m, scheme in passes},
            "do": _stage(
                f"{_script('sensitivity', params_file)} --model-dir {_dvc(PATHS['model'])} --model ${{item.model}} "
                f"--scheme ${{item.scheme}} --calibration {path('calibration')} --out {_dvc(PATHS['sensitivity'])} "
                f"--plots {' '.join(_dvc(p) for p in plots)} "
                "--log logs/sensitivity/${item.model}/${item.scheme}.log",
                [_dvc(PATHS["model"]), path("calibration"), "scripts/sensitivity.py", f"{CODE}/mixed"],
                [_dvc(PATHS["sensitivity"])] + [_dvc(p) for p in plots],
                _present(raw, "sensitivity", "decoding", "report.plot_formats"),
            ),
        }
    }


def _by_backend(items: dict[str, dict]) -> dict[str, dict[str, dict]]:
    groups: dict[str, dict[str, dict]] = {}
    for name, item in items.items():
        groups.setdefault(item["backend"], {})[name] = item
    return groups


def _per_backend(name: str, groups: dict[str, dict[str, dict]], stage) -> dict:
    """One foreach stage per backend (`<name>_<backend>`), so that each tracks only its own backend's
    options: a DVC foreach shares one params list across its items."""
    return {f"{name}_{backend}": {"foreach": items, "do": stage(backend)} for backend, items in groups.items()}


def _export_option_keys(raw: dict, backend: str) -> list[str]:
    written = ((raw.get("backends") or {}).get(backend) or {}).get("options") or {}
    return [f"backends.{backend}.options.{name}" for name in written if reads_at_export(backend, name)]


def _export_stage(params: dict, raw: dict, params_file: str) -> dict:
    if not needs_calibration(params):
        return {}
    return _per_backend(
        "export",
        _by_backend({f"{m}-{b}": {"model": m, "backend": b} for m, b in exports(params)}),
        lambda backend: _stage(
            f"{_script('export_model', params_file)} --model-dir {_dvc(PATHS['model'])} --model ${{item.model}} "
            f"--backend ${{item.backend}} --calibration {path('calibration')} --out {_dvc(PATHS['export'])} "
            "--log logs/export/${item.model}/${item.backend}.log",
            [_dvc(PATHS["model"]), path("calibration"), "scripts/export_model.py", f"{CODE}/backends"],
            [_dvc(PATHS["export"])],
            _present(raw, "decoding") + _export_option_keys(raw, backend),
        ),
    )


def _pass_stage(params: dict, raw: dict, params_file: str, which: str, backend: str) -> dict:
    """A cell's accuracy or timing pass: same script, its own manifest, outputs and params keys."""
    manifest, rows, run = {
        "accuracy": ("manifest", "hypotheses", "accuracy_run"),
        "timing": ("timing_manifest", "timings", "timing_run"),
    }[which]
    keys = ["decoding", which] + (
        ["accuracy.batch_size"] if which == "timing" and params["timing"]["throughput"] else []
    )
    if which == "accuracy" and registry.get(backend).threads_change_numerics:
        keys.append("timing.threads")
    return _stage(
        f"{_script('transcribe', params_file)} --pass {which} --dataset ${{item.dataset}} --model ${{item.model}} "
        f"--backend ${{item.backend}} --precision ${{item.precision}} --manifest {_dvc(PATHS[manifest])} "
        f"--model-dir {_dvc(PATHS['model'])} --artifact {_dvc(PATHS['artifact'])} "
        f"--rows {_dvc(PATHS[rows])} --run {_dvc(PATHS[run])} --log logs/{which}/{CELL_LOG}",
        [_dvc(PATHS[manifest]), _dvc(PATHS["model"]), _dvc(PATHS["artifact"]), "scripts/transcribe.py"]
        + [f"{CODE}/evaluate.py"],
        [_dvc(PATHS[rows]), _dvc(PATHS[run])],
        _present(raw, *keys, f"backends.{backend}.options"),
    )


CELL_LOG = "${item.dataset}/${item.model}/${item.backend}/${item.precision}.log"


def _cell_stages(params: dict, raw: dict, params_file: str) -> dict:
    cell_items = {f"{c.dataset}-{c.model}-{c.backend}-{c.precision}": dict(c.__dict__) for c in cells(params)}
    inputs = ("hypotheses", "accuracy_run", "timings", "timing_run")
    by_backend = _by_backend(cell_items)
    return {
        **_per_backend("accuracy", by_backend, partial(_pass_stage, params, raw, params_file, "accuracy")),
        **_per_backend("timing", by_backend, partial(_pass_stage, params, raw, params_file, "timing")),
        "score": {
            "foreach": cell_items,
            "do": _stage(
                f"{_script('score', params_file)} --hypotheses {_dvc(PATHS['hypotheses'])} "
                f"--accuracy {_dvc(PATHS['accuracy_run'])} --timings {_dvc(PATHS['timings'])} "
                f"--timing {_dvc(PATHS['timing_run'])} --out {_dvc(PATHS['metrics'])} --log logs/score/{CELL_LOG}",
                [_dvc(PATHS[name]) for name in inputs] + ["scripts/score.py", f"{CODE}/metrics/score.py"],
                [_dvc(PATHS["metrics"])],
                [],
            ),
        },
    }


def _report_stage(params: dict, raw: dict, params_file: str) -> dict:
    metrics, hypotheses = metrics_paths(params), hypotheses_paths(params)
    plot_files = plot_paths(params)
    cmd = (
        f"{_script('report', params_file)} --metrics {' '.join(metrics)} --hypotheses {' '.join(hypotheses)} "
        f"--csv {path('summary_csv')} --markdown {path('summary_md')} --latex {path('summary_tex')} "
        f"--json {path('summary_json')} --plots {' '.join(plot_files)} --log logs/report.log"
    )
    return {
        "report": {
            "cmd": cmd,
            "deps": metrics + hypotheses + ["scripts/report.py", f"{CODE}/report", f"{CODE}/metrics/uncertainty.py"],
            "params": _present(raw, "report"),
            "outs": [path("summary_md"), path("summary_tex")],
            "metrics": [{path("summary_json"): {"cache": False}}],
            "plots": [{path("summary_csv"): {"cache": False, "x": "size_mb", "y": "wer_pct", "template": "scatter"}}]
            + [{p: {"cache": False}} for p in plot_files],
        }
    }


def dvc_yaml(params: dict, raw: dict, params_file: str = "params.yaml") -> dict:
    stages = {}
    for part in (_data_stages, _model_stages, _cell_stages, _report_stage):
        stages |= part(params, raw, params_file)
    # a second view of the same table for `dvc plots show`: the speed-accuracy trade-off
    speed = {"WER vs RTFx": {"template": "scatter", "x": "rtfx", "y": {path("summary_csv"): "wer_pct"}}}
    return {"stages": stages, "plots": [speed]}


HEADER = (
    "# GENERATED from params.yaml by `python -m whisperbench.dag` (make dvc.yaml): do not edit by hand.\n"
    "# Same scripts and paths as the Snakemake rules in workflow/rules/; tests/test_dag.py keeps them in step.\n"
)


def render(params: dict, raw: dict, params_file: str = "params.yaml") -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data):  # spell every stage out: the file is read by people too
            return True

    return HEADER + yaml.dump(dvc_yaml(params, raw, params_file), Dumper=Dumper, sort_keys=False, width=1000)
