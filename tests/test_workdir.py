"""A study folder is held by one live run; a run killed any way leaves nothing the next run trips on."""

import signal
import subprocess
import sys
import time

import pytest

from whisperbench import workdir
from whisperbench.errors import UserError


def test_a_live_run_holds_the_folder_and_a_killed_one_leaves_it_free(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from whisperbench import workdir; h = workdir.claim(); print('held', flush=True); "
            "import time; time.sleep(60)",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    (tmp_path / ".snakemake" / "locks").mkdir()
    (tmp_path / ".snakemake" / "locks" / "0.output.lock").write_text("stale?")
    with pytest.raises(UserError, match=rf"another study is running in this folder \(pid {holder.pid}\)"):
        workdir.claim(tmp_path)
    assert (tmp_path / ".snakemake" / "locks" / "0.output.lock").exists()  # a live run's locks are kept
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    time.sleep(0.1)
    handle = workdir.claim(tmp_path)  # the kernel dropped the dead run's lock: no manual unlock
    assert not list((tmp_path / ".snakemake" / "locks").glob("*.lock"))
    handle.close()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["snakemake", "--cores", "2"], False),
        (["snakemake", "-p", "--cores", "2", "--configfile", "x.yaml"], False),
        (["snakemake", "-n"], True),
        (["snakemake", "-np", "--cores", "2"], True),
        (["snakemake", "--dry-run"], True),
        (["snakemake", "--unlock"], True),
        (["snakemake", "--report", "results/report.html"], True),
    ],
)
def test_runs_that_execute_no_job_take_no_lock(argv, expected):
    assert workdir.read_only(argv) is expected
