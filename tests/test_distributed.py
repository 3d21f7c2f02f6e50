"""DDP on the CPU (gloo): two processes with the same global batch end where one process ends."""

import socket
import subprocess
import sys

import pytest
import torch
from processes import RUN, single_process, torchrun, weights, worker_env

from conftest import ROOT, compose_config
from lesam.core.run_folder import RunFolder
from lesam.core.run_id import run_id
from lesam.engine import distributed


@pytest.fixture(scope="module")
def torchrun_runs(tmp_path_factory):
    """One torchrun launch trains all twelve runs (a multirun), to pay its start-up once."""
    out = tmp_path_factory.mktemp("torchrun")
    sweep = ["-m", "optimizer=sgd,sam,lesam", "optimizer.perturb_sync=global,local", "trainer.accumulation_steps=1,2"]
    sweep += [*RUN, f"output_root={out}"]
    result = torchrun(*sweep)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("accumulation", [1, 2])
@pytest.mark.parametrize("optimizer", ["sgd", "sam", "lesam"])
def test_two_processes_end_with_the_weights_of_one(optimizer, accumulation, torchrun_runs, tmp_path):
    """With two micro-batches per pass, each process all-reduces once per pass, as one process without them."""
    _, alone = single_process(tmp_path, f"optimizer={optimizer}", "optimizer.perturb_sync=global")
    two = [f"optimizer={optimizer}", "optimizer.perturb_sync=global", f"trainer.accumulation_steps={accumulation}"]
    together = torchrun_runs / run_id(compose_config([*RUN, *two]))
    assert RunFolder(together).read_final()["processes"] == 2
    assert RunFolder(alone).read_final()["processes"] == 1
    a, b = weights(alone), weights(together)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    for one, two in zip(RunFolder(alone).read_metrics(), RunFolder(together).read_metrics(), strict=True):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key
        radius = ("rho_mean", "perturbed_steps", "grad_norm_mean", "clipped_steps", "clipped_fraction")  # per step
        assert [k for k in radius if k in two] == [k for k in radius if k in one]
        for key in (k for k in radius if k in one):
            assert two[key] == pytest.approx(one[key], rel=1e-5), key


def test_local_perturbation_runs_and_differs(torchrun_runs, tmp_path):
    cfg, alone = single_process(tmp_path, "optimizer=lesam", "optimizer.perturb_sync=global")
    local = compose_config([*RUN, "optimizer=lesam", "optimizer.perturb_sync=local"])
    folder = torchrun_runs / run_id(local)
    assert RunFolder(folder).read_final()["steps"] == 12
    a, b = weights(alone), weights(folder)
    difference = max((a[k] - b[k]).abs().max().item() for k in a)
    assert difference > 1e-4, "each process's own perturbation should change the trajectory"
    assert all(torch.isfinite(v).all() for v in b.values())


def test_local_perturbation_with_micro_batches_keeps_each_process_s_own_gradient(torchrun_runs):
    """The whole first pass stays local (no all-reduce after its last micro-batch either)."""
    local = [*RUN, "optimizer=lesam", "optimizer.perturb_sync=local"]
    whole, parts = (
        weights(torchrun_runs / run_id(compose_config([*local, f"trainer.accumulation_steps={k}"]))) for k in (1, 2)
    )
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], rtol=1e-5, atol=1e-6, msg=key)


def test_srun_tasks_without_torchrun_train_together(tmp_path):
    """Two processes that know their rank only from SLURM's variables (as under srun or submitit)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # the rendezvous port is derived from the job id: pick a free one
    slurm = {"SLURM_STEP_NUM_TASKS": "2", "SLURM_JOB_ID": str(port - 20000), "SLURM_STEP_NODELIST": "localhost"}
    overrides = [*RUN, "trainer.epochs=1", "optimizer=sgd", f"output_root={tmp_path / 'srun'}"]
    tasks = [
        subprocess.Popen(
            [sys.executable, "train.py", *overrides],
            cwd=ROOT,
            env=worker_env(**slurm, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    errors = [task.communicate(timeout=300)[1] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], errors
    cfg, alone = single_process(tmp_path / "alone", "trainer.epochs=1", "optimizer=sgd")
    together = tmp_path / "srun" / run_id(cfg)
    assert RunFolder(together).read_final()["processes"] == 2
    a, b = weights(alone), weights(together)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)


def test_placement_reads_torchrun_then_srun_variables():
    torchrun_env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "SLURM_PROCID": "0"}
    srun_env = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "8"}
    batch_script = {"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}  # sbatch's own shell: not one of the tasks
    assert distributed.placement(torchrun_env) == distributed.Placement(3, 1, 4)
    assert distributed.placement(srun_env) == distributed.Placement(5, 1, 8)
    assert distributed.placement(batch_script) == distributed.Placement(0, 0, 1)
    assert distributed.placement({}) == distributed.Placement(0, 0, 1)


@pytest.mark.parametrize(
    "nodelist,host",
    [("node7", "node7"), ("gpu[03-04,07],cpu1", "gpu03"), ("a1,b[1-2]", "a1"), ("rack[2-3]-ib", "rack2-ib")],
)
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert distributed.first_host(nodelist) == host


def test_global_batch_must_split_evenly(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert distributed.local_batch(96, "trainer.batch_size") == 32
    with pytest.raises(distributed.UserError, match="trainer.batch_size=128 is the global batch"):
        distributed.local_batch(128, "trainer.batch_size")
