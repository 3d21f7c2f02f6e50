"""SLURM through hydra-submitit-launcher: one task per GPU, requeued on preemption, and the sbatch script it makes."""

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from submitit.slurm.slurm import SlurmExecutor

from conftest import CONFIGS
from lesam.core.resolvers import register_resolvers


def compose_with_hydra(overrides: list[str]):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_runs_one_task_per_gpu_and_requeues():
    launcher = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4"]).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4
    assert launcher.additional_parameters.requeue is True
    assert launcher.max_num_timeout > 0 and launcher.signal_delay_s >= 60


SCRIPTS = {  # launcher -> lines its sbatch script must have, and lines it must not
    "slurm": (("--ntasks-per-node=8", "--gpus-per-node=8", "--requeue", "--signal=USR2@120", "--time=1440"), ()),
    "slurm_cpu": (("--ntasks-per-node=1", "--cpus-per-task=1", "--partition=debug", "--requeue"), ("--gpus",)),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_sbatch_script_asks_for_the_signal_the_run_listens_to(name, tmp_path, monkeypatch):
    """The plugin's own launch(), up to the point where it would call sbatch."""
    scripts = []

    def render(self, function, *arguments):
        scripts.append(self._executor._make_submission_file_text("python -m submitit.core._submit", "job"))
        return []

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # as if srun were installed
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", render)
    cfg = compose_with_hydra([f"hydra/launcher={name}", f"output_root={tmp_path}", "hydra.job.name=train"])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["seed=0"]], initial_job_idx=0)
    (script,) = scripts
    present, absent = SCRIPTS[name]
    for line in present:
        assert f"#SBATCH {line}\n" in script, script
    assert not any(f"#SBATCH {line}" in script for line in absent), script
    assert "srun" in script
