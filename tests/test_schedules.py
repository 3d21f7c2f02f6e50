"""Every schedule a recipe trains with, pinned where a cosine differs from a line and an offset from none.

Expected values are closed forms of the schedules' definitions, written out here: half a cosine from 1 to
0 over [a, b] is (1 + cos(pi (t - a) / (b - a))) / 2, so a quarter of the way it is (2 + sqrt 2) / 4 (a line
gives 3/4), a third of the way 3/4 (a line 2/3), and a sixth (2 + sqrt 3) / 4 (a line 5/6).
"""

import math

import pytest
from omegaconf import OmegaConf

from conftest import compose_config, smoke_overrides, without_hydra
from lesam.engine.trainer import Trainer
from lesam.optim import StepSchedule, budget_factor, lr_factor

QUARTER = (2 + math.sqrt(2)) / 4  # half a cosine a quarter of the way: 0.8536
THREE_QUARTERS = (2 - math.sqrt(2)) / 4  # three quarters of the way: 0.1464
THIRD = 3 / 4  # a third of the way
SIXTH = (2 + math.sqrt(3)) / 4  # a sixth of the way: 0.9330


@pytest.mark.parametrize(
    "epoch,expected",
    [(0, 1.0), (50, QUARTER), (200 / 3, THIRD), (100, 0.5), (150, THREE_QUARTERS), (200, 0.0), (250, 0.0)],
)
def test_cosine_learning_rate_without_warm_up(epoch, expected):
    assert lr_factor(epoch, 200, "cosine") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "epoch,expected",
    # 10 warm-up epochs, then half a cosine over the remaining 90: a quarter of it ends at 32.5, a third at 40
    [(0, 0.0), (2.5, 0.25), (5, 0.5), (10, 1.0), (32.5, QUARTER), (40, THIRD), (55, 0.5), (77.5, THREE_QUARTERS)],
)
def test_cosine_learning_rate_after_warm_up_starts_at_the_warm_up_end(epoch, expected):
    assert lr_factor(epoch, 100, "cosine", warmup_epochs=10) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "epoch,expected",
    [(0, 1.0), (59.75, 1.0), (60, 0.2), (60.25, 0.2), (119.75, 0.2), (120, 0.04), (159.75, 0.04), (160, 0.008)],
)
def test_multistep_decays_at_each_milestone_and_not_before(epoch, expected):
    assert lr_factor(epoch, 200, "multistep", milestones=[60, 120, 160], gamma=0.2) == pytest.approx(expected)


@pytest.mark.parametrize("epoch,expected", [(2, 0.4), (5, 1.0), (74.5, 1.0), (75, 0.1), (89.5, 0.1), (90, 0.01)])
def test_multistep_after_warm_up(epoch, expected):
    assert lr_factor(epoch, 100, "multistep", 5, [75, 90], 0.1) == pytest.approx(expected)


@pytest.mark.parametrize(
    "epoch,expected",
    # the paper's CIFAR annealing: a cosine from 1 at epoch 160 to 0 at 200
    [(100, 1.0), (160, 1.0), (170, QUARTER), (160 + 40 / 3, THIRD), (180, 0.5), (190, THREE_QUARTERS), (200, 0.0)],
)
def test_budget_annealing_is_half_a_cosine_from_its_start_epoch(epoch, expected):
    assert budget_factor(epoch, 200, anneal_start_epoch=160) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("epoch,expected", [(60, 1.0), (65, SIXTH), (70, THIRD), (75, 0.5), (80, 0.25), (90, 0.0)])
def test_budget_annealing_of_the_imagenet_recipe(epoch, expected):
    assert budget_factor(epoch, 90, anneal_start_epoch=60) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "epoch,expected", [(0, 0.0), (1, 0.1), (2.5, 0.25), (7.5, 0.75), (10, 1.0), (100, 1.0), (170, QUARTER)]
)
def test_budget_warm_up_is_linear_then_annealed(epoch, expected):
    """The authors' code: delta grows linearly from 0 over 10 epochs, and is annealed from epoch 160 of 200."""
    assert budget_factor(epoch, 200, warmup_epochs=10, anneal_start_epoch=160) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("epoch,expected", [(159.75, 0.0), (160, 0.0), (162.5, 0.25), (165, 0.5), (170, 1.0)])
def test_budget_warm_up_counts_from_the_start_epoch(epoch, expected):
    assert budget_factor(epoch, 200, warmup_epochs=10, start_epoch=160) == pytest.approx(expected, abs=1e-12)


def schedule(cfg, steps_per_epoch: int) -> StepSchedule:
    return StepSchedule(cfg.schedule, cfg.optimizer, cfg.trainer.epochs, steps_per_epoch)


def test_the_schedule_steps_every_step_within_an_epoch():
    """Four steps an epoch over two epochs: the value at step s is the formula's at epoch s / 4."""
    cfg = OmegaConf.create(
        {"schedule": {"name": "cosine"}, "optimizer": {"delta_warmup_epochs": 1.5}, "trainer": {"epochs": 2}}
    )
    steps = schedule(cfg, steps_per_epoch=4)
    assert [steps.lr_factor(s) for s in range(9)] == pytest.approx(
        [(1 + math.cos(math.pi * s / 8)) / 2 for s in range(9)], abs=1e-12
    )
    assert [steps.budget_factor(s) for s in range(8)] == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1])


@pytest.mark.parametrize(
    "experiment,lr,budget",
    [
        # CIFAR (Table 1): cosine over 200 epochs; delta annealed from epoch 160
        (
            "cifar100_resnet18",
            {50: QUARTER, 100: 0.5, 150: THREE_QUARTERS},
            {160: 1.0, 170: QUARTER, 190: THREE_QUARTERS},
        ),
        # ImageNet (Table 2): cosine over 90 epochs; delta annealed from epoch 60
        ("imagenet_r50", {22.5: QUARTER, 30: THIRD, 45: 0.5}, {59.5: 1.0, 65: SIXTH, 70: THIRD, 75: 0.5}),
        # adversarial robustness (Table 5): lr divided by 10 at epochs 75 and 90; delta not annealed
        ("robust_cifar10", {74.5: 1.0, 75: 0.1, 89.5: 0.1, 90: 0.01}, {1: 1.0, 99.5: 1.0}),
    ],
)
def test_the_recipes_schedules(experiment, lr, budget):
    """LE-SAM's recipes, composed as train.py does; 12 steps an epoch (any number would do) make each point a step."""
    cfg = compose_config([f"experiment={experiment}", "optimizer=lesam"])
    steps = schedule(cfg, steps_per_epoch=12)
    assert {epoch: steps.lr_factor(round(epoch * 12)) for epoch in lr} == pytest.approx(lr, abs=1e-12)
    assert {epoch: steps.budget_factor(round(epoch * 12)) for epoch in budget} == pytest.approx(budget, abs=1e-12)


def test_each_training_step_runs_with_its_own_learning_rate_and_budget(tmp_path):
    """The trainer applies the schedule before every step: six steps, four an epoch, delta warmed up over one epoch."""
    overrides = ["model=mlp", "model.hidden=[8]", "optimizer=lesam", "optimizer.delta_warmup_epochs=1"]
    cfg = compose_config(smoke_overrides(tmp_path, *overrides, "trainer.steps=6"))
    trainer = Trainer(without_hydra(cfg))
    optimizer, seen = trainer.optimizer, []
    step = optimizer.step

    def recording_step(closure):
        seen.append((optimizer.param_groups[0]["lr"], optimizer.perturb_scale))
        return step(closure)

    optimizer.step = recording_step
    while not trainer.done:
        trainer.train_epoch()
    peak = cfg.optimizer.lr
    assert [lr for lr, _ in seen] == pytest.approx([peak * (1 + math.cos(math.pi * s / 6)) / 2 for s in range(6)])
    assert [budget for _, budget in seen] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])
