"""A misspelt key, a value of the wrong type or out of range: one line before any training, no run folder."""

import sys

import pytest
from hydra import compose
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from conftest import CONFIGS, compose_config, error_line, run_command
from lesam.core.errors import UserError
from lesam.engine.validate import check_run_mode, validate
from lesam.models import config_problem
from lesam.report.plan import composer

QUICK = ["debug=smoke", "model=mlp"]


@pytest.mark.parametrize(
    "overrides,line",
    [
        (["+trainer.epochz=3"], "unknown key 'trainer.epochz'"),
        (["experiment=typo"], "unknown key 'optimizer.rho_mx'"),  # a preset Hydra merges without a word
        (["trainer.channels_last=maybe"], "trainer.channels_last='maybe' must be true or false"),
        (["optimizer.perturb_sync=sideways"], "optimizer.perturb_sync='sideways' must be one of global, local"),
        (["optimizer.lr=inf"], "optimizer.lr=inf is not a finite number; give it a finite value"),
    ],
)
def test_bad_config_gives_one_line_and_no_run_folder(tmp_path, overrides, line):
    presets = tmp_path / "presets" / "experiment"
    presets.mkdir(parents=True)
    (presets / "typo.yaml").write_text("# @package _global_\noptimizer:\n  rho_mx: 0.2\n")
    out = tmp_path / "out"
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'presets'}]"
    result = run_command([sys.executable, "train.py", searchpath, f"output_root={out}", *QUICK, *overrides])
    assert line in error_line(result)
    assert not out.exists() or not any(out.iterdir()), list(out.rglob("*"))


@pytest.mark.parametrize(
    "overrides,line",
    [
        (["model.width=2.5"], "model.width=2.5 must be an integer"),
        (["dataset.root=123"], "dataset.root=123 must be a string, as in configs/dataset/ (quote it"),
        (["optimizer.lr=[0.1]"], "optimizer.lr=[0.1] must be a number"),
        (["trainer.nonfinite_window=0"], "trainer.nonfinite_window=0 must be an integer >= 1"),
        (["optimizer.momentum=1.5"], "optimizer.momentum=1.5 must be in [0, 1)"),
        (["+model.hiden=[8]"], "unknown key 'model.hiden'"),
        (["seed=99999999999999999999999"], "seed=99999999999999999999999 must be an integer from 0 to 4294967295"),
        (["dataset.num_classes=0"], "dataset.num_classes=0 must be an integer >= 2"),
        (["model=mlp", "model.hidden=[-5]"], "model.hidden=[-5] must be a list of integers >= 1"),
        (["debug=smoke", "dataset.num_test=0"], "dataset.num_test=0 must be an integer >= 1 (a run ends with a test)"),
        (["output_root=/"], "output_root='/' must name a folder other than /"),
        (["model=wrn28_10", "model.depth=27"], "model.depth=27 must be 4 + 6n with n >= 1 (28 for WRN-28-10)"),
        (["model=wrn28_10", "model.depth=4"], "model.depth=4 must be 4 + 6n with n >= 1"),
        (["model=pyramidnet110", "model.depth=111"], "model.depth=111 must be 2 + 6n with n >= 1 when bottleneck"),
        (["model=pyramidnet110", "model.bottleneck=true", "model.depth=26"], "model.depth=26 must be 2 + 9n"),
    ],
)
def test_schema_and_ranges_name_the_key(overrides, line):
    with pytest.raises(UserError) as error:
        validate(compose_config(overrides))
    assert line in str(error.value)


@pytest.mark.parametrize(
    "overrides",
    [["model=wrn28_10"], ["model=wrn28_10", "model.depth=16"], ["model=pyramidnet110", "model.bottleneck=true"]],
)
def test_the_depths_a_network_can_have_pass(overrides):
    cfg = compose_config(overrides)
    validate(cfg)
    assert config_problem(cfg.model) is None


def compose_with_hydra(overrides: list[str]) -> DictConfig:
    """The config with Hydra's node, which a multirun's check of its jobs validates."""
    with composer():
        return compose("config", overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["optimizer.lr=inf"], "optimizer.lr=inf"),
        (["optimizer=sam", "optimizer.rho=inf"], "optimizer.rho=inf"),
        (["optimizer=lesam", "optimizer.delta=inf"], "optimizer.delta=inf"),
        (["optimizer=lesam", "optimizer.delta=nan"], "optimizer.delta=nan"),  # no range check names nan rightly
        (["trainer.label_smoothing=-inf"], "trainer.label_smoothing=-inf"),
        (["trainer.lpf.sigma=nan"], "trainer.lpf.sigma=nan"),
    ],
)
def test_a_value_that_is_not_finite_is_refused_naming_its_key(overrides, key):
    with pytest.raises(UserError) as error:
        validate(compose_config(overrides))
    assert str(error.value) == f"{key} is not a finite number; give it a finite value"


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["optimizer=sam", "model=wrn28_10", "dataset=cifar100"],
        ["optimizer=lesam_plus", "model=pyramidnet110", "optimizer.lr=1", "trainer.max_steps=5"],
        ["model=mlp", "model.hidden=[8,8]", "optimizer.rho_max=null", "optimizer.perturb_sync=local"],
        ["experiment=demo"],
    ],
)
def test_good_configs_pass(overrides):
    validate(compose_config(overrides))
    validate(compose_with_hydra(overrides))  # as a multirun checks it: with the choices of each group


@pytest.mark.parametrize(
    "overrides,line",
    [
        (["optimizer.name=sam"], "optimizer.name=sam disagrees with optimizer=lesam; choose optimizer=sam instead"),
        (["model=wrn28_10", "model.name=resnet18"], "model.name=resnet18 disagrees with model=wrn28_10"),
        (["dataset.name=cifar100"], "dataset.name=cifar100 disagrees with dataset=cifar10"),
    ],
)
def test_a_name_that_disagrees_with_its_group_is_refused(overrides, line):
    with pytest.raises(UserError) as error:
        validate(compose_with_hydra(overrides))
    assert line in str(error.value)


def test_each_config_file_is_named_for_itself():
    """A group's `name` is checked against the option chosen: each file's `name` must be its own."""
    named = {path: OmegaConf.load(path).get("name") for path in CONFIGS.glob("*/*.yaml")}
    assert [path for path, name in named.items() if name is not None and name != path.stem] == []
    assert sum(name is not None for name in named.values()) > 30


@pytest.mark.parametrize(
    "overrides,line",
    [
        (["sweep=delta"], "sweep=delta acts only in a multirun: add -m (python train.py -m sweep=delta ...)"),
        (["hydra/launcher=slurm"], "hydra/launcher=slurm acts only in a multirun: add -m"),
    ],
)
def test_multirun_choices_without_m_are_refused(overrides, line):
    hydra = compose_with_hydra(overrides).hydra
    hydra.mode = RunMode.MULTIRUN
    check_run_mode(hydra)  # with -m: the choice acts
    hydra.mode = RunMode.RUN
    with pytest.raises(UserError) as error:
        check_run_mode(hydra)
    assert line in str(error.value)
