"""Table 1's cell-family presets, the baselines' radii from their sources, and the rho sweeps."""

import pytest
from omegaconf import OmegaConf

from conftest import CONFIGS, compose_config

BACKBONES = ("resnet18", "wrn28_10", "pyramidnet110")
RECIPE_GROUPS = ("recipe/model_optimizer", "recipe/dataset_optimizer")
RHO_SWEEPS = sorted(p.stem for p in (CONFIGS / "sweep").glob("rho_*.yaml"))


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("model", BACKBONES)
def test_cell_family_preset_chooses_data_set_model_and_appendix_f_recipe(dataset, model):
    cfg = compose_config([f"experiment={dataset}_{model}", "optimizer=lesam"])
    plain = compose_config([f"dataset={dataset}", f"model={model}", "optimizer=lesam"])
    assert (cfg.dataset.name, cfg.model.name, cfg.dataset.augment, cfg.schedule.name) == (
        dataset,
        model,
        "basic",
        "cosine",
    )
    assert cfg.trainer == plain.trainer and cfg.optimizer == plain.optimizer  # the recipes, untouched


@pytest.mark.parametrize("model,rho", [("resnet18", 0.05), ("wrn28_10", 0.1), ("pyramidnet110", 0.2)])
def test_sam_radius_per_backbone(model, rho):
    for dataset in ("cifar10", "cifar100"):
        assert compose_config([f"experiment={dataset}_{model}", "optimizer=sam"]).optimizer.rho == rho


@pytest.mark.parametrize(
    "model,rho,beta", [("resnet18", 0.05, 0.6), ("wrn28_10", 0.1, 0.5), ("pyramidnet110", 0.2, 0.5)]
)
def test_esam_values_per_backbone(model, rho, beta):
    o = compose_config([f"experiment=cifar100_{model}", "optimizer=esam"]).optimizer
    assert (o.rho, o.beta, o.gamma) == (rho, beta, 0.5)


@pytest.mark.parametrize("dataset,rho", [("cifar10", 0.5), ("cifar100", 1.0)])
def test_asam_radius_per_data_set(dataset, rho):
    for model in BACKBONES:
        assert compose_config([f"experiment={dataset}_{model}", "optimizer=asam"]).optimizer.rho == rho


def test_fsam_radius_on_cifar100():
    assert compose_config(["experiment=cifar100_resnet18", "optimizer=fsam"]).optimizer.rho == 0.2


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(CONFIGS) for group in RECIPE_GROUPS for p in (CONFIGS / group).glob("*.yaml"))
)
def test_recipe_keys_exist_in_their_optimizer(path):
    """A misspelt key would be ignored silently by the optimizer factory; each must be the optimizer's own."""
    group = "model" if path.parts[1] == "model_optimizer" else "dataset"
    options = sorted((p.stem for p in (CONFIGS / group).glob("*.yaml")), key=len, reverse=True)
    first = next(o for o in options if path.stem.startswith(f"{o}_"))  # names may hold '_' themselves
    optimizer = path.stem.removeprefix(f"{first}_")
    own = compose_config(["dataset=synthetic", "model=mlp", f"optimizer={optimizer}"]).optimizer
    keys = set(OmegaConf.load(CONFIGS / path).get("optimizer", {}))
    assert keys <= set(own), f"{path} sets {keys - set(own)}, which optimizer={optimizer} does not have"


@pytest.mark.parametrize("sweep", RHO_SWEEPS)
def test_rho_sweep_sets_its_optimizer_and_the_tables_radius(sweep):
    name = sweep.removeprefix("rho_")
    assert {"rho_sam", "rho_asam", "rho_esam", "rho_fsam", "rho_eigensam"} == set(RHO_SWEEPS)
    for model in BACKBONES:
        cfg = compose_config([f"experiment=cifar100_{model}", f"sweep={sweep}"])
        assert cfg.optimizer.name == name
        grid = [float(v) for v in str(_sweep_params(sweep)["optimizer.rho"]).split(",")]
        assert cfg.optimizer.rho in grid  # the table's run is one of the sweep's runs (the same folder)
        assert str(_sweep_params(sweep)["seed"]) == "0,1,2"


def _sweep_params(sweep):
    return OmegaConf.load(CONFIGS / "sweep" / f"{sweep}.yaml").hydra.sweeper.params
