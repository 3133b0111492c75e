# Validation and path helpers shared by the rules. Stops before any job on a bad param.
import json
import sys

from whisperbench import config as study_config
from whisperbench import dag
from whisperbench.errors import UserError

# Scripts read the same file Snakemake loaded, so both see the same params.
PARAMS_FILE = workflow.overwrite_configfiles[-1] if workflow.overwrite_configfiles else "params.yaml"
# The interpreter running Snakemake (the project venv) runs the scripts too, so `.venv/bin/snakemake`
# works without activating the venv; under `--sdm conda` the env's own `python` is used.
USES_CONDA = any("conda" in str(method).lower() for method in workflow.deployment_settings.deployment_method)
PYTHON = "python" if USES_CONDA else sys.executable
PY = f"{PYTHON} scripts/{{script}}.py --params {PARAMS_FILE}"

try:
    PARAMS = study_config.validate(config, PARAMS_FILE)
    if PARAMS != study_config.load(PARAMS_FILE):
        raise UserError(
            f"the config Snakemake merged differs from {PARAMS_FILE}: pass one complete file with "
            "--configfile FILE --replace-workflow-config (not --config key=value)"
        )
except UserError as error:
    print(f"whisperbench: error: {error}", file=sys.stderr)
    sys.exit(2)

# Timings are only honest with the machine to themselves: one transcription at a time unless the
# user grants more slots (`--resources timing_slot=N`, e.g. on a cluster with one job per node).
if "timing_slot" not in workflow.global_resources:
    workflow.register_resource("timing_slot", 1)


wildcard_constraints:
    dataset="[^/]+",
    model="[^/]+",
    backend="[a-z0-9_]+",
    precision="[a-z0-9_]+",


def script(name):
    return PY.format(script=name)


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
