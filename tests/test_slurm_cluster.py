"""SLURM for real: a sweep of two tiny runs through `hydra/launcher=slurm_cpu`, one requeued halfway through
an epoch, ends with the weights and metrics of the same runs made here without SLURM.

It needs a SLURM that answers `sinfo` on this machine with a partition `debug`. Where none answers and
the test runs as root (as CI does), it starts one with tests/slurm/start-local.sh (a one-node cluster;
the first call installs its Debian packages); otherwise it is skipped, with the reason. Run it with
`pytest -m slow tests/test_slurm_cluster.py`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, compose_config
from lesam.core.run_folder import RunFolder
from lesam.core.run_id import run_id
from lesam.engine.run import run
from lesam.report.smoke import one_thread

START = Path(__file__).with_name("slurm") / "start-local.sh"
OPTIMIZERS = ("sgd", "lesam")  # job 0 runs through, job 1 is requeued in its second epoch
JOB = [  # 128 steps an epoch: seconds, so a requeue sent once epoch 1 is written lands inside epoch 2
    "dataset=synthetic",
    "dataset.num_train=2048",
    "dataset.num_test=64",
    "model=small_cnn",
    "model.width=8",
    "trainer.epochs=2",
    "trainer.batch_size=16",
    "trainer.workers=0",
    "trainer.device=cpu",
    "trainer.progress=false",
]
TIMING = {"seconds", "train_seconds", "images_per_s"}
pytestmark = pytest.mark.slow


def slurm_missing() -> str | None:
    """Why no SLURM can be used here, or None once one answers (started by this test where it may)."""
    if shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0:
        return None
    if os.geteuid() != 0:
        return "no SLURM answers sinfo here, and starting one (tests/slurm/start-local.sh) needs root"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "no SLURM here, and no apt-get to install one"
    started = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        return f"could not start SLURM: {(started.stderr or started.stdout).strip().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = slurm_missing()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("sbatch") is None:
        pytest.skip("SLURM answers, but sbatch is not on PATH")


def wait_for(condition, what: str, timeout: float, sweep: subprocess.Popen | None = None):
    """Poll `condition` every 0.1 s until it returns something true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if sweep is not None and sweep.poll() is not None:
            pytest.fail(f"the sweep ended (status {sweep.returncode}) before {what}")
        time.sleep(0.1)
    pytest.fail(f"no {what} after {timeout:.0f} s")


def local_runs(root: Path) -> dict[str, Path]:
    """Each optimizer's run made in this process, one thread as the SLURM jobs: its folder."""
    folders = {}
    with one_thread():
        for optimizer in OPTIMIZERS:
            cfg = compose_config([*JOB, f"optimizer={optimizer}", f"output_root={root}"])
            folders[optimizer] = root / run_id(cfg)
            run(cfg, folder=folders[optimizer])
    return folders


def requeue_mid_epoch(sweep: subprocess.Popen, root: Path, job: int) -> str:
    """Requeue job `job` of the sweep once its first epoch is written; its SLURM id."""
    optimizer = OPTIMIZERS[job]
    wait_for(lambda: list(root.glob(f"*-{optimizer}-*/metrics.jsonl")), f"epoch 1 of job {job}", 300, sweep)
    (folder,) = (root / ".submitit").glob(f"*_{job}")  # submitit's folder of array task <array id>_<job>
    subprocess.run(["scontrol", "requeue", folder.name], check=True, capture_output=True)
    # SLURM holds a requeued job back for a while (its begin time); let it start again at once
    wait_for(lambda: job_state(folder.name) == "PD", f"requeued job {folder.name} pending", 120, sweep)
    subprocess.run(["scontrol", "update", f"JobId={folder.name}", "StartTime=now"], check=True, capture_output=True)
    return folder.name


def job_state(job: str) -> str:
    """squeue's short state of a job (PD pending, R running, CG completing), or '' once it is gone."""
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%t"], capture_output=True, text=True).stdout.strip()


def cancel(root: Path) -> None:
    """Cancel the sweep's SLURM jobs (the arrays whose tasks submitit keeps under root/.submitit)."""
    arrays = {folder.name.split("_")[0] for folder in (root / ".submitit").glob("*_*")}
    for array in sorted(arrays):
        subprocess.run(["scancel", array], check=False)


def result(folder: Path) -> tuple[dict, list[dict], dict]:
    """A run's weights, its metrics without timings and its result without seconds."""
    state = torch.load(folder / "last.pt", weights_only=True)["trainer"]["model"]
    metrics = [{k: v for k, v in r.items() if k not in TIMING} for r in RunFolder(folder).read_metrics()]
    final = {k: v for k, v in json.loads((folder / "final.json").read_text()).items() if k != "seconds"}
    return state, metrics, final


def test_a_requeued_slurm_sweep_ends_as_the_same_runs_made_here(slurm, tmp_path):
    local = local_runs(tmp_path / "local")
    cluster = tmp_path / "slurm"
    command = [sys.executable, "train.py", "-m", "hydra/launcher=slurm_cpu", *JOB, f"optimizer={','.join(OPTIMIZERS)}"]
    output = tmp_path / "sweep.log"  # the launcher's messages; a file, so no pipe fills up while it waits
    with output.open("w") as log_file:
        sweep = subprocess.Popen(
            [*command, f"output_root={cluster}"],
            cwd=ROOT,
            env=os.environ | {"OMP_NUM_THREADS": "1"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            requeued = requeue_mid_epoch(sweep, cluster, job=1)
            sweep.wait(timeout=600)
        finally:
            if sweep.poll() is None:
                sweep.kill()
                cancel(cluster)
    assert sweep.returncode == 0, output.read_text()[-3000:]

    log = (cluster / ".submitit" / requeued / f"{requeued}_0_log.out").read_text()
    stopped = re.search(r"stopped by SIGTERM after step (\d+): wrote", log)
    assert stopped, log
    step = int(stopped.group(1))
    assert 128 < step < 256, log  # inside epoch 2
    assert f"at step {step}, {step - 128} of 128 steps into epoch 2" in log, log

    for optimizer, folder in local.items():
        there = cluster / folder.name  # the same config: the same run id
        (weights, metrics, final), (expected_weights, expected_metrics, expected_final) = result(there), result(folder)
        assert weights.keys() == expected_weights.keys()
        assert all(torch.equal(weights[k], expected_weights[k]) for k in weights), optimizer
        assert (metrics, final) == (expected_metrics, expected_final), optimizer
