"""profiles/slurm against a real SLURM: the tiny study through sbatch, timing jobs on exclusive nodes.

Needs a running cluster this machine can submit to; `.ci/slurm-one-node.sh` (root) starts a one-node
SLURM 22.05 from Debian's packages, and CI runs it before the tests. Without one the test skips.
"""

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = Path(sys.executable).parent
# No slurmdbd on the one-node cluster: sacct cannot answer, so job states come from squeue.
NO_ACCOUNTING = ["--slurm-status-command", "squeue", "--slurm-no-account"]


def _idle_cluster() -> str | None:
    """Why the test cannot run here, or None when a SLURM node is idle."""
    if shutil.which("sinfo") is None:
        return "no SLURM client here (run .ci/slurm-one-node.sh as root to start a one-node cluster)"
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], check=False, capture_output=True, text=True)
    if states.returncode != 0 or "idle" not in states.stdout.split():
        return f"no idle SLURM node ({(states.stderr or states.stdout).strip()}); run .ci/slurm-one-node.sh"
    return None


@pytest.mark.slow
def test_the_tiny_study_runs_through_slurm_with_exclusive_timing_jobs(tmp_path):
    if reason := _idle_cluster():
        pytest.skip(reason)
    workdir = tmp_path / "study"
    workdir.mkdir()
    for folder in ("scripts", "workflow", "src", "envs", "profiles"):
        shutil.copytree(REPO / folder, workdir / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "Snakefile", workdir)
    shutil.copy(REPO / "tests/configs/slurm.yaml", workdir / "params.yaml")
    command = [str(BIN / "snakemake"), "--profile", "profiles/slurm", *NO_ACCOUNTING]
    command += ["--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5", "--jobs", "4"]
    env = {"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin", "HOME": str(workdir)}
    run = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1500, check=False)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    with open(workdir / "results/summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["precision"] for row in rows} == {"fp32", "int8"}
    assert all(row["status"] == "ok" and float(row["wer_pct"]) < 100 for row in rows), rows
    jobs = _jobs_of_this_run(workdir)
    assert {"fetch_model", "accuracy", "timing", "score", "report"} <= set(jobs.values()), jobs
    for job_id, rule in jobs.items():
        shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=False)
        assert "JobState=COMPLETED" in shown.stdout, shown.stdout
        if rule == "timing":  # --exclusive from the profile: the node was the job's alone
            assert "OverSubscribe=NO" in shown.stdout, shown.stdout


def _jobs_of_this_run(workdir: Path) -> dict[str, str]:
    """{SLURM job id: rule} of the jobs submitted from `workdir` (slurmctld keeps finished jobs MinJobAge s)."""
    listed = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%i|%k|%Z"], capture_output=True, text=True, check=True
    ).stdout
    jobs = {}
    for line in listed.splitlines():
        job_id, comment, folder = line.split("|", 2)
        if Path(folder) == workdir and (rule := re.match(r"rule_([a-z_]+?)(_wildcards_|$)", comment)):
            jobs[job_id] = rule.group(1)
    return jobs
