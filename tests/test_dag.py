"""Snakemake and DVC run the same scripts to the same files; re-runs do only what changed."""

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from whisperbench import artifacts, config, dag, dvc_stages
from whisperbench.backends import registry

BIN = Path(sys.executable).parent
ENV_PATH = f"{BIN}:/usr/bin:/bin"


def _run(command: list[str], cwd: Path, check: bool = True) -> str:
    result = subprocess.run(
        command, check=False, cwd=cwd, capture_output=True, text=True, env={"PATH": ENV_PATH, "HOME": str(cwd)}
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def _value(item: dict, match: re.Match) -> str:
    return item[match.group(1)]


def _dvc_commands(dvc_yaml: dict) -> set[str]:
    """Every stage command with DVC's foreach expanded."""
    commands = set()
    for name, stage in dvc_yaml["stages"].items():
        if name == "validate":  # Snakemake validates while parsing the Snakefile instead
            continue
        if "foreach" not in stage:
            commands.add(stage["cmd"])
            continue
        for item in stage["foreach"].values():
            commands.add(re.sub(r"\$\{item\.(\w+)\}", partial(_value, item), stage["do"]["cmd"]))
    return commands


def _snakemake_commands(workdir: Path, *args: str) -> set[str]:
    out = _run([str(BIN / "snakemake"), "-n", "-p", "--forceall", "--cores", "2", *args], workdir)
    prefix = "Shell command: "
    commands = {line.removeprefix(prefix).strip() for line in out.splitlines() if line.startswith(prefix)}
    return commands - {"None"}  # rule all has no command


def test_committed_dvc_yaml_is_generated_from_params():
    params_file = REPO / "params.yaml"
    expected = dvc_stages.render(config.load(params_file), yaml.safe_load(params_file.read_text()), "params.yaml")
    assert (REPO / "dvc.yaml").read_text() == expected, "dvc.yaml is stale: run `make dvc.yaml`"


def test_both_engines_plan_the_same_commands():
    dvc_commands = _dvc_commands(yaml.safe_load((REPO / "dvc.yaml").read_text()))
    assert _snakemake_commands(REPO) == dvc_commands
    # manifests (2 datasets, their 2 timed subsets, calibration), models, exports (onnxruntime, coreml),
    # artifacts, accuracy and timing passes, scores, report
    assert len(dvc_commands) == 5 + 2 + 4 + 46 + 92 + 92 + 92 + 1
    # no absolute path in any command: a study copied elsewhere plans nothing new
    assert all(command.startswith("python scripts/") and " /" not in command for command in dvc_commands)


def test_each_backend_stage_tracks_only_its_own_backend_options():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    per_backend = [name for name in stages if name.rsplit("_", 1)[-1] in raw["backends"]]
    assert {name.rsplit("_", 1)[0] for name in per_backend} == {"export", "build_artifact", "accuracy", "timing"}
    assert {"export_coreml", "export_onnxruntime"} <= set(per_backend) and "export_pytorch" not in per_backend
    for name in per_backend:
        backend = name.rsplit("_", 1)[-1]
        options = {key for key in stages[name]["do"].get("params", []) if key.startswith("backends.")}
        if name.startswith("export_"):  # only the options the export reads: a recipe's rebuilds no export
            written = raw["backends"][backend].get("options", {})
            reads = registry.get(backend).load_module().EXPORT_OPTIONS
            assert options == {f"backends.{backend}.options.{key}" for key in written if key in reads}, name
        else:
            assert options <= {f"backends.{backend}.options"}, name
        assert {item["backend"] for item in stages[name]["foreach"].values()} == {backend}, name


def test_a_recipe_option_changes_the_builds_not_the_export():
    params = config.load(REPO / "params.yaml")
    before = dag.export_options(params, "onnxruntime")
    params["backends"]["onnxruntime"].setdefault("options", {})["mixed_bits_per_weight"] = 6.0
    params["backends"]["onnxruntime"]["options"]["int4_block_size"] = 64
    assert dag.export_options(params, "onnxruntime") == before
    params["backends"]["onnxruntime"]["options"]["opset"] = 18
    assert dag.export_options(params, "onnxruntime") == before | {"opset": 18}


def test_whispercpp_accuracy_pass_runs_on_the_timing_threads():
    """ggml's sums depend on the thread count: both passes of a whisper.cpp cell must use the same one."""
    params = config.load(REPO / "params.yaml")
    params["accuracy"]["threads"], params["timing"]["threads"] = 1, 3
    assert config.accuracy_threads("whispercpp", params) == 3
    assert config.accuracy_threads("pytorch", params) == 1
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "timing.threads" in stages["accuracy_whispercpp"]["do"]["params"]
    assert "timing.threads" not in stages["accuracy_pytorch"]["do"]["params"]


def test_both_engines_plan_the_same_commands_for_a_hugging_face_dataset(tmp_path):
    workdir = _workspace(tmp_path, "hf")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"]["ami"] = {"source": "hf", "path": "/data/ami-test", "max_utterances": 3}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    _run([str(BIN / "python"), "-m", "whisperbench.dag", "--params", "params.yaml", "--out", "dvc.yaml"], workdir)
    dvc_yaml = yaml.safe_load((workdir / "dvc.yaml").read_text())
    assert set(dvc_yaml["stages"]["hf_manifest"]["foreach"]) == {"ami"}
    assert set(dvc_yaml["stages"]["manifest"]["foreach"]) == {"synthetic"}
    commands = _snakemake_commands(workdir)
    assert commands == _dvc_commands(dvc_yaml)
    assert any("--dataset ami --timing --clips data/clips/ami.timing" in command for command in commands)


def _workspace(tmp_path: Path, name: str) -> Path:
    workdir = tmp_path / name
    workdir.mkdir()
    for folder in ("scripts", "workflow", "src", "envs"):
        shutil.copytree(REPO / folder, workdir / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    shutil.copy(REPO / "Snakefile", workdir)
    shutil.copy(REPO / "tests/configs/dag.yaml", workdir / "params.yaml")
    _run([str(BIN / "python"), "-m", "whisperbench.dag", "--params", "params.yaml", "--out", "dvc.yaml"], workdir)
    return workdir


def _results(workdir: Path) -> set[str]:
    return {str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*") if p.is_file()}


def _edit(workdir: Path, section: str, key: str, value) -> dict:
    """Set one params key; return the params as they were, to put back with _restore."""
    before = yaml.safe_load((workdir / "params.yaml").read_text())
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params[section][key] = value
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return before


def _edit_backend(workdir: Path, backend: str, key: str, value) -> dict:
    before = yaml.safe_load((workdir / "params.yaml").read_text())
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["backends"][backend][key] = value
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return before


def _restore(workdir: Path, params: dict) -> None:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def _planned_jobs(workdir: Path) -> set[tuple[str, str]]:
    """(rule, backend or "") of every job Snakemake plans."""
    planned = _run([str(BIN / "snakemake"), "--cores", "2", "-n"], workdir)
    jobs = set()
    for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", planned, flags=re.MULTILINE | re.DOTALL):
        backend = re.search(r"\bbackend=(\w+)", body)
        jobs.add((rule, backend.group(1) if backend else ""))
    return jobs


def _planned_rules(workdir: Path) -> set[str]:
    return {rule for rule, _ in _planned_jobs(workdir)}


SMALLER = {"source": "synthetic", "max_utterances": 2, "seed": 0}
# params change -> the only rules (Snakemake) / stages (DVC, besides `validate`) that run again
SLICES = [
    (("timing", "repeats", 2), {"timing", "score", "report"}),
    (("accuracy", "batch_size", 1), {"accuracy", "score", "report"}),
    # the pass ranks on more clips: it re-runs, the mixed build that reads it and that cell's steps
    (("sensitivity", "utterances", 1), {"sensitivity", "build_artifact", "accuracy", "timing", "score", "report"}),
]


# a backend option re-runs that backend's builds and cells, nothing of the other backend
OPTION_SLICE = (
    ("pytorch", "options", {"attn_implementation": "eager"}),
    {("build_artifact", "pytorch"), ("accuracy", "pytorch"), ("timing", "pytorch"), ("score", "pytorch")}
    | {("report", "")},
)


def _check_snakemake_slices(workdir: Path) -> None:
    (backend, key, value), jobs = OPTION_SLICE
    before = _edit_backend(workdir, backend, key, value)
    assert _planned_jobs(workdir) == jobs | {("all", "")}
    _restore(workdir, before)
    timed_subset = (("timing", "utterances", 1), {"timing_manifest", "timing", "score", "report"})
    smaller_dataset = (("datasets", "synthetic", SMALLER), {"manifest", "accuracy", "score", "report"})
    for (section, key, value), rules in [*SLICES, timed_subset, smaller_dataset]:
        before = _edit(workdir, section, key, value)
        assert _planned_rules(workdir) == rules | {"all"}, (section, key)
        _restore(workdir, before)


def _dvc_jobs_run(workdir: Path) -> set[tuple[str, str]]:
    """(stage, backend or "") of every stage `dvc repro` runs, per-backend stage names (`accuracy_pytorch`)
    folded to the step's name as Snakemake's rules have it."""
    backends = yaml.safe_load((workdir / "params.yaml").read_text())["backends"]
    jobs = set()
    for stage, item in re.findall(r"Running stage '(\w+)@?([\w.-]*)'", _run([str(BIN / "dvc"), "repro"], workdir)):
        backend = next((b for b in backends if stage.endswith(f"_{b}") or f"-{b}-" in item), "")
        step = stage.removesuffix(f"_{backend}")
        jobs.add(("build_artifact" if step == "build_mixed" else step, backend))  # Snakemake has one build rule
    return jobs


def _dvc_stages_run(workdir: Path) -> set[str]:
    return {stage for stage, _ in _dvc_jobs_run(workdir)}


def _check_dvc_slices(workdir: Path) -> None:
    (backend, key, value), jobs = OPTION_SLICE
    _edit_backend(workdir, backend, key, value)  # the slices below start from this state
    assert _dvc_jobs_run(workdir) == jobs | {("validate", "")}
    for (section, key, value), stages in SLICES:
        _edit(workdir, section, key, value)
        assert _dvc_stages_run(workdir) == stages | {"validate"}, (section, key)
    _edit(workdir, "datasets", "synthetic", SMALLER)
    # the timed subset's stage re-reads the corpus and writes the same file, which triggers nothing more
    assert _dvc_stages_run(workdir) == {"validate", "manifest", "timing_manifest", "accuracy", "score", "report"}


def _copy_plans_nothing(workdir: Path, tmp_path: Path) -> None:
    """A finished study copied to another folder is up to date there (no absolute path in any command)."""
    copy = tmp_path / f"{workdir.name}-moved"
    shutil.copytree(workdir, copy, symlinks=True)
    if (copy / ".dvc").is_dir():
        assert "Running stage" not in _run([str(BIN / "dvc"), "repro"], copy)
    else:
        assert "Nothing to be done" in _run([str(BIN / "snakemake"), "--cores", "2", "-n"], copy)
    shutil.rmtree(copy)


# The columns that must not depend on how a run went (crashes, resumes, the engine): accuracy and sizes.
STABLE_COLUMNS = ("dataset", "model", "backend", "precision", "size_mb", "wer_pct", "wer_low_pct", "wer_high_pct")
STABLE_COLUMNS += ("delta_wer_pct", "delta_low_pct", "delta_high_pct", "n_utterances", "n_subset")


def _tables(workdir: Path) -> tuple[list[dict], dict[str, bytes]]:
    """The summary's accuracy and size columns, and every cell's hypotheses, byte for byte."""
    with open(workdir / "results/summary.csv", newline="") as handle:
        rows = [{key: row[key] for key in STABLE_COLUMNS} for row in csv.DictReader(handle)]
    hypotheses = {
        str(path.relative_to(workdir)): path.read_bytes() for path in (workdir / "results").rglob("hypotheses.jsonl")
    }
    return rows, hypotheses


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, tuple]:
    """The tiny study run once from start to end: its folder, and its tables to compare others with."""
    snake = _workspace(tmp_path_factory.mktemp("uninterrupted"), "snakemake")
    _run([str(BIN / "snakemake"), "--cores", "2"], snake)
    return snake, _tables(snake)


# Where a run is killed: the first file whose appearance shows that stage is under way (jobs are running then).
KILL_POINTS = [
    ("models fetched, exports and builds running", "data/models/*/source.json"),
    ("accuracy passes running", "results/*/*/*/*/hypotheses.jsonl"),
    ("cells being scored", "results/*/*/*/*/metrics.json"),
]


def _kill_when(command: list[str], workdir: Path, pattern: str, timeout_s: float = 900) -> None:
    """Start `command`, SIGKILL it and every job it started as soon as a file matching `pattern` exists."""
    env = {"PATH": ENV_PATH, "HOME": str(workdir)}
    run = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + timeout_s
    while not list(workdir.glob(pattern)):
        assert run.poll() is None, f"{' '.join(command)} ended before {pattern} appeared"
        assert time.monotonic() < deadline, f"{pattern} did not appear"
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGKILL)  # the whole run: the engine and its jobs, as an OOM kill or a reboot would
    run.wait()


@pytest.mark.slow
def test_a_run_killed_at_three_points_resumes_with_the_same_command_to_the_same_tables(
    uninterrupted, tmp_path, fault_table
):
    _, tables = uninterrupted
    snake = _workspace(tmp_path, "killed")
    command = [str(BIN / "snakemake"), "--cores", "2"]
    for _, pattern in KILL_POINTS:
        _kill_when(command, snake, pattern)
    _run(command, snake)  # the plain command: no --unlock, no cleanup
    assert _tables(snake) == tables
    assert "Nothing to be done" in _run([*command, "-n"], snake)
    fault_table.add(
        "the whole run killed (SIGKILL) at three points, then the same command",
        "no error: the same command (`snakemake --cores 2`, `dvc repro`) goes on; stale locks are cleared and "
        "incomplete jobs re-run",
        "every finished job; WER and size tables and every hypotheses file byte-identical to an uninterrupted run "
        f"(Snakemake killed while: {'; '.join(point for point, _ in KILL_POINTS)}; `dvc repro` while "
        f"{KILL_POINTS[1][0]})",
    )


@pytest.mark.slow
def test_whole_dag_runs_caches_and_reruns_only_what_changed(uninterrupted, tmp_path):
    snake, tables = uninterrupted
    summary = (snake / "results/summary.md").read_text()
    assert "| synthetic" in summary and "fp32" in summary and "int4" in summary
    assert "Core ML weights, PyTorch numerics" in summary and "speed, memory: needs macOS" in summary
    assert (snake / "results/plots/wer_vs_size.png").stat().st_size > 1000
    # what `make report` runs, written outside results/ so the two engines' results stay comparable
    _run([str(BIN / "snakemake"), "--report", str(tmp_path / "report.html")], snake)
    page = (tmp_path / "report.html").read_text()
    assert "wer_vs_rtfx" in page and "latency_breakdown" in page and "paired interval" in page
    assert "Nothing to be done" in _run([str(BIN / "snakemake"), "--cores", "2", "-n"], snake)
    _copy_plans_nothing(snake, tmp_path)
    _check_snakemake_slices(snake)

    _edit(snake, "datasets", "synthetic", SMALLER)  # the cells re-run, so they need the artifact again
    _corrupt(snake / INT8_ONNX)
    planned = _run([str(BIN / "snakemake"), "--cores", "2", "-n"], snake)
    assert "corrupt" in planned and "so that it is rebuilt" in planned, planned
    assert "build_artifact" in set(re.findall(r"^rule (\w+):", planned, flags=re.MULTILINE)), planned

    dvc = _workspace(tmp_path, "dvc")
    _run([str(BIN / "dvc"), "init", "--no-scm", "-q"], dvc)
    _kill_when([str(BIN / "dvc"), "repro"], dvc, KILL_POINTS[1][1])  # DVC resumes with the same command too
    _run([str(BIN / "dvc"), "repro"], dvc)
    assert _results(dvc) == _results(snake)
    assert _tables(dvc) == tables
    assert "Running stage" not in _run([str(BIN / "dvc"), "repro"], dvc)
    metrics = _run([str(BIN / "dvc"), "metrics", "show"], dvc)
    assert "synthetic/tiny.en/pytorch/fp32" in metrics
    _run([str(BIN / "dvc"), "plots", "show", "--out", "dvc_plots"], dvc)
    rendered = (dvc / "dvc_plots/index.html").read_text()
    assert "WER vs RTFx" in rendered and "wer_vs_size.png" in rendered
    _copy_plans_nothing(dvc, tmp_path)
    _check_dvc_slices(dvc)

    _corrupt(dvc / INT8_ONNX)  # DVC sees the changed output and restores the good copy from its cache
    rerun = _run([str(BIN / "dvc"), "repro"], dvc)
    assert "Stage 'build_artifact_onnxruntime@tiny.en-onnxruntime-int8_dynamic' is cached" in rerun, rerun
    artifacts.verify((dvc / INT8_ONNX).parent)


INT8_ONNX = "data/artifacts/tiny.en/onnxruntime/int8_dynamic/decoder.onnx"


def _corrupt(path: Path) -> None:
    path.chmod(0o644)  # DVC may have made cached files read-only
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"corrupt")
