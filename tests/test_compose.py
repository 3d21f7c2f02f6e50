"""Every group option composes, the paper's recipes land where they should, and each optimizer
and CIFAR backbone runs two steps on synthetic data."""

import itertools

import pytest
import torch

from conftest import CONFIGS, TINY, compose_config, smoke_overrides
from lesam.engine.run import run
from lesam.report.plan import composer

DATASETS = sorted(p.stem for p in (CONFIGS / "dataset").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONFIGS / "optimizer").glob("*.yaml"))


def test_groups_hold_the_required_options():
    assert {"cifar10", "cifar100", "fashion_mnist", "synthetic"} <= set(DATASETS)
    assert {"resnet18", "wrn28_10", "pyramidnet110", "small_cnn", "mlp"} <= set(MODELS)
    assert {"sgd", "sam", "lesam", "lesam_plus"} <= set(OPTIMIZERS)


def combinations_compose(triples) -> None:
    """Each (dataset, model, optimizer) composes into a config that names all three."""
    with composer() as c:
        for dataset, model, optimizer in triples:
            cfg = c.compose([f"dataset={dataset}", f"model={model}", f"optimizer={optimizer}"])
            assert (cfg.dataset.name, cfg.model.name, cfg.optimizer.name) == (dataset, model, optimizer)


@pytest.mark.slow  # 45 s: every pair of config options
def test_every_pair_of_options_composes():
    """Recipes key on pairs of groups (model x optimizer, dataset x model, ...): every pair, the third fixed."""
    pairs = [(d, m, "lesam") for d, m in itertools.product(DATASETS, MODELS)]
    pairs += [("cifar100", m, o) for m, o in itertools.product(MODELS, OPTIMIZERS)]
    pairs += [(d, "resnet18", o) for d, o in itertools.product(DATASETS, OPTIMIZERS)]
    combinations_compose(pairs)


@pytest.mark.slow
def test_every_combination_composes():
    combinations_compose(itertools.product(DATASETS, MODELS, OPTIMIZERS))


@pytest.mark.parametrize(
    "model,epochs,batch,lr,delta,rho_max,anneal",
    [
        ("resnet18", 200, 128, 0.05, 0.35, 0.4, 160),
        ("wrn28_10", 200, 256, 0.05, 0.3, None, None),
        ("pyramidnet110", 300, 256, 0.1, 0.3, None, None),
    ],
)
def test_lesam_recipes_follow_appendix_f(model, epochs, batch, lr, delta, rho_max, anneal):
    cfg = compose_config(["optimizer=lesam", f"model={model}", "dataset=cifar100"])
    t, o = cfg.trainer, cfg.optimizer
    assert (t.epochs, t.batch_size, o.lr, o.momentum, o.weight_decay) == (epochs, batch, lr, 0.9, 5e-4)
    assert (o.delta, o.rho_max, o.anneal_start_epoch) == (delta, rho_max, anneal)
    assert cfg.schedule.name == "cosine"


@pytest.mark.parametrize(
    "model,alpha,delta", [("resnet18", 0.5, 0.15), ("wrn28_10", 0.55, 0.2), ("pyramidnet110", 0.6, 0.25)]
)
def test_lesam_plus_recipes_follow_section_6_1(model, alpha, delta):
    cfg = compose_config(["optimizer=lesam_plus", f"model={model}"])
    assert (cfg.optimizer.alpha, cfg.optimizer.delta) == (alpha, delta)


def test_command_line_wins_over_recipes():
    cfg = compose_config(["optimizer=lesam", "model=wrn28_10", "optimizer.delta=0.45", "trainer.batch_size=64"])
    assert (cfg.optimizer.delta, cfg.trainer.batch_size) == (0.45, 64)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_two_steps_of_each_optimizer(optimizer, tmp_path):
    cfg = compose_config(
        smoke_overrides(
            tmp_path, "model=small_cnn", *TINY["small_cnn"], f"optimizer={optimizer}", "trainer.max_steps=2"
        )
    )
    final = run(cfg, folder=tmp_path / "run")
    assert final["steps"] == 2 and final["optimizer"] == optimizer
    assert 0 <= final["test_acc"] <= 100


@pytest.mark.parametrize("model", ["resnet18", "wrn28_10", "pyramidnet110"])
def test_two_steps_of_each_cifar_backbone_at_tiny_width(model, tmp_path):
    cfg = compose_config(
        smoke_overrides(tmp_path, f"model={model}", *TINY[model], "optimizer=lesam", "trainer.max_steps=2")
    )
    final = run(cfg, folder=tmp_path / "run")
    assert final["steps"] == 2
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["trainer"]["model"].values() if v.is_floating_point())
