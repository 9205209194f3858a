"""The workflow on a real one-node SLURM cluster (Debian's slurm + munge, a fake GPU).

``make test`` installs the Debian packages when it runs as root; without root or without
them the test is skipped with the reason. The cluster's daemons are started and stopped
by their PID files (``tests/slurm/cluster.sh``) and every wait is bounded.

What it shows: every job of the training chain goes through sbatch and its model equals a
local run's; a training job given a GPU asks the scheduler for one and, on a node whose
torch has no CUDA, fails with one clear line, once per attempt, no loop; a training job
cancelled mid-run is retried by Snakemake, resumes from its checkpoint and ends with the
weights of an uninterrupted run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.workflow.helpers import PROJECT_ROOT, make_workdir, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CLUSTER = PROJECT_ROOT / "tests" / "slurm" / "cluster.sh"
PROFILE = PROJECT_ROOT / "profiles" / "slurm"
#: The profile as shipped (this cluster has no accounting), polling more often.
SLURM_ARGS = (
    "--profile", str(PROFILE),
    "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
    "--latency-wait", "5",
)  # fmt: skip
TARGET = "results/models/orbitrap_hcd/pretrained.pt"
RUN_TIMEOUT = 1500  # the chain takes ~5 min on 2 free cores; a loaded machine takes longer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("starting SLURM daemons needs root")
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch") if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make test installs them when root)")
    if Path("/etc/slurm/slurm.conf").exists():
        pytest.skip("this machine has a SLURM configuration of its own; not touching it")
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        [str(CLUSTER), "start", str(folder)], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        logs = "".join(p.read_text()[-2000:] for p in folder.glob("*.log"))
        subprocess.run([str(CLUSTER), "stop", str(folder)], timeout=60, check=False)
        pytest.fail(f"the test cluster did not start: {started.stderr}\n{logs}")
    yield folder
    subprocess.run([str(CLUSTER), "stop", str(folder)], timeout=60, check=False)


def _jobs() -> list[dict[str, str]]:
    """Every job the controller still knows (MinJobAge keeps finished ones)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, timeout=30
    ).stdout
    jobs = []
    for line in out.splitlines():
        if line.startswith("JobId="):
            jobs.append(dict(re.findall(r"(\w+)=(\S*)", line)))
    return jobs


def _rule_jobs(rule: str, since: set[str]) -> list[dict[str, str]]:
    return [
        j for j in _jobs() if j["JobId"] not in since and f"rule_{rule}" in j.get("Comment", "")
    ]


def _edit_config(workdir: Path, **pretrain) -> None:
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["pretrain"].update(pretrain)
    path.write_text(yaml.safe_dump(config))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["ema"]


def _same_weights(a: Path, b: Path) -> None:
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_jobs_go_through_sbatch_a_cancelled_training_job_resumes_and_gpus_are_requested(
    cluster, tmp_path
):
    """The training chain through the profile as shipped; its training job is cancelled
    (scancel) mid-run, Snakemake's retry resumes it from its checkpoint, and the model
    equals a local, uninterrupted run's. Then the training job again with a GPU: the
    scheduler is asked for one, and without CUDA each attempt fails with one clear line."""
    settings = {"steps": 400, "eval_every": 200, "batch_size": 16}
    workdir = make_workdir(tmp_path / "slurm", PROJECT_ROOT / "tests" / "config")
    _edit_config(workdir, **settings)
    before = {j["JobId"] for j in _jobs()}
    process = subprocess.Popen(
        [*snakemake_command(workdir), *SLURM_ARGS, TARGET],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    attempts_log = workdir / "logs" / "pretrain" / "orbitrap_hcd.attempts.log"
    deadline = time.monotonic() + RUN_TIMEOUT
    cancelled = None
    try:
        while time.monotonic() < deadline and process.poll() is None and cancelled is None:
            text = attempts_log.read_text() if attempts_log.exists() else ""
            steps = [int(s) for s in re.findall(r"step (\d+)/400 ", text)]
            running = _rule_jobs("pretrain", before)
            if running and steps and steps[-1] >= 100:
                cancelled = running[0]["JobId"]
                subprocess.run(["scancel", cancelled], timeout=30, check=True)
            time.sleep(0.5)
        output, _ = process.communicate(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
    assert cancelled is not None, "the training job was never seen running"
    assert process.returncode == 0, output[-5000:]
    log = attempts_log.read_text()
    stopped = int(re.search(r"stopped at step (\d+)", log).group(1))
    resumed = int(re.search(r"resumed from \S+ at step (\d+)", log).group(1))
    assert 100 <= stopped < 400 and resumed == stopped
    submitted = [j for j in _jobs() if j["JobId"] not in before]
    rules = sorted(
        re.search(r"rule_([a-z_]+?)_wildcards", j["Comment"]).group(1) for j in submitted
    )
    # Every job went through sbatch; the training job twice (cancelled, then resumed).
    expected = ["fit_noise", "labels", "labels", "peptide_mix", "pretrain", "pretrain", "synthetic"]
    assert rules == expected, rules
    assert [j["JobState"] for j in submitted if j["JobId"] != cancelled] == ["COMPLETED"] * 6
    # The uninterrupted run, locally, from the same inputs (copied with their times, so
    # that only the training job runs).
    local = make_workdir(tmp_path / "local", PROJECT_ROOT / "tests" / "config")
    _edit_config(local, **settings)
    for folder in ("labels", "synthetic", "noise"):
        shutil.copytree(workdir / "results" / folder, local / "results" / folder)
    result = snakemake("--cores", "2", TARGET, workdir=local, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "synthetic" not in re.findall(r"rule (\w+):", result.stdout + result.stderr)
    _same_weights(workdir / TARGET, local / TARGET)
    if torch.cuda.is_available():
        return
    # A GPU training job: the scheduler is asked for a GPU; this torch has no CUDA.
    _edit_config(workdir, gpus=1)
    before = {j["JobId"] for j in _jobs()}
    # (--forcerun takes several rule names: the target goes before it.)
    result = snakemake(*SLURM_ARGS, TARGET, "--forcerun", "pretrain", workdir=workdir,
                       timeout=RUN_TIMEOUT)  # fmt: skip
    assert result.returncode != 0
    attempts = _rule_jobs("pretrain", before)
    assert len(attempts) == 2  # the first try and the profile's one retry: no loop
    assert [j for j in _jobs() if j["JobId"] not in before] == attempts  # nothing else
    for job in attempts:
        assert "gpu:1" in job.get("TresPerJob", "") + job.get("TresPerNode", ""), job
    log = attempts_log.read_text().split("SLURM job " + attempts[0]["JobId"] + ")", 1)[1]
    assert log.count("trm pretrain: new attempt") == 1  # the second one, after the first
    assert log.count("sees no CUDA device") == 2
    assert "Traceback" not in log


def snakemake_command(workdir: Path) -> list[str]:
    from tests.workflow.helpers import SNAKEMAKE

    return [*SNAKEMAKE, "--snakefile", str(PROJECT_ROOT / "Snakefile"), "--directory", str(workdir)]
