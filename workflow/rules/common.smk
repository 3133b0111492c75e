# Validation and path helpers shared by the rules. Stops before any job on a bad param.
import json
import os
import re
import sys
from pathlib import Path

from whisperbench import config as study_config
from whisperbench import dag, workdir
from whisperbench.errors import UserError

# Scripts read the same file Snakemake loaded, so both see the same params. Rule commands name it
# relative to the working folder and call plain `python`: a command holds no absolute path, so a finished
# study copied or moved elsewhere is not re-run for "code has changed".
PARAMS_FILE = os.path.relpath(workflow.overwrite_configfiles[-1]) if workflow.overwrite_configfiles else "params.yaml"
# `python` is the interpreter running Snakemake (the project venv), put first on PATH, so that
# `.venv/bin/snakemake` works without activating the venv; under `--sdm conda` the env's own python.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
PY = f"python scripts/{{script}}.py --params {PARAMS_FILE}"

try:
    PARAMS = study_config.validate(config, PARAMS_FILE)
    if PARAMS != study_config.load(PARAMS_FILE):
        raise UserError(
            f"the config Snakemake merged differs from {PARAMS_FILE}: pass one complete file with "
            "--configfile FILE --replace-workflow-config (not --config key=value)"
        )
    # after a crash the same command resumes: stale Snakemake locks go, incomplete outputs re-run
    # (profiles/default: rerun-incomplete); a second live run in this folder is refused
    if workflow.is_main_process and not workdir.read_only(sys.argv):
        FOLDER_LOCK = workdir.claim()
except UserError as error:
    print(f"whisperbench: error: {error}", file=sys.stderr)
    sys.exit(2)

wildcard_constraints:
    # exactly the configured ids, so data/manifests/<id>.timing.jsonl is never read as a dataset "<id>.timing"
    dataset="|".join(re.escape(name) for name in PARAMS["datasets"]),
    model="[^/]+",
    backend="[a-z0-9_]+",
    precision="[a-z0-9_]+",
    scheme="[a-z0-9_]+",


def machine_cores(cluster_threads):
    """Threads of a job that must have the machine to itself. Locally: every core Snakemake has, so the
    scheduler starts nothing beside it. On a cluster (--executor slurm) there is no such total: the job
    asks for `cluster_threads` and the profile gives it a node of its own (profiles/slurm: --exclusive)."""
    return lambda wildcards: cluster_threads if workflow.non_local_exec else workflow.cores


def script(name):
    return PY.format(script=name)


def canonical(value):
    """Params as canonical JSON text: Snakemake compares params as text, and rewriting params.yaml with
    keys in another order is not a change."""
    return json.dumps(value, sort_keys=True)


# A cached export or artifact whose files no longer match their recorded sha256 is removed here,
# before planning, so that this run rebuilds it instead of measuring a corrupt file. Only folders whose
# files changed size or time since they were sealed are hashed, so this costs nothing on a clean cache.
def _remove_corrupt_caches():
    from whisperbench import artifacts

    folders = [dag.path("export", model=m, backend=b) for m, b in study_config.exports(PARAMS)]
    folders += [dag.path("artifact", model=m, backend=b, precision=p) for m, b, p in study_config.artifacts(PARAMS)]
    for folder in folders:
        if message := artifacts.remove_if_corrupt(folder):
            print(f"whisperbench: {message}", file=sys.stderr)


_remove_corrupt_caches()
