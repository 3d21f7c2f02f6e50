"""PGD: raises the loss, stays in the epsilon ball and in [0, 1], and with epsilon 0 leaves the clean
accuracy; `analyze.py analysis=pgd` writes pgd.json next to the checkpoint."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT, compose_config, smoke_overrides
from lesam.analysis.pgd import Normalized, attack
from lesam.engine.run import run


def problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5)
    )
    model = Normalized(model, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)).eval()
    x = torch.rand(64, 3, 8, 8)
    x[:4] = x[:4].round()  # pixels at the borders of [0, 1]
    return model, x, model(x).argmax(1)


@pytest.mark.parametrize("norm,epsilon,step_size", [("linf", 8 / 255, 2 / 255), ("l2", 0.5, 0.1)])
@pytest.mark.parametrize("random", [True, False])
def test_pgd_raises_the_loss_within_the_ball_and_the_pixel_range(norm, epsilon, step_size, random):
    model, x, y = problem()
    adversarial = attack(model, x, y, norm, epsilon, step_size, steps=10, random=random)
    clean_loss = F.cross_entropy(model(x), y, reduction="none")
    adv_loss = F.cross_entropy(model(adversarial), y, reduction="none")
    assert adv_loss.mean() > clean_loss.mean() + 0.1
    assert (adv_loss >= clean_loss - 1e-6).float().mean() > 0.9
    delta = (adversarial - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert size.max() <= epsilon * (1 + 1e-5)
    assert size.max() >= 0.5 * epsilon  # it does use the ball
    assert adversarial.min() >= 0 and adversarial.max() <= 1


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_with_epsilon_zero_returns_the_clean_images(norm):
    model, x, y = problem()
    assert torch.equal(attack(model, x, y, norm, 0.0, 1 / 255, steps=5, random=True), x)


def test_analyze_pgd_writes_clean_and_attacked_accuracy(tmp_path):
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=mlp", "model.hidden=[32]", "optimizer=sgd", "trainer.epochs=2")
    )
    final = run(cfg, folder=tmp_path / "run")
    attacks = (
        "{zero: {norm: linf, epsilon: 0, step_size: 1, steps: 3, random_start: true},"
        " linf_8: {norm: linf, epsilon: 8, step_size: 2, steps: 5, random_start: true},"
        " l2_64: {norm: l2, epsilon: 64, step_size: 16, steps: 5, random_start: false}}"
    )
    result = subprocess.run(
        [
            sys.executable,
            "analyze.py",
            "analysis=pgd",
            f"checkpoint={tmp_path / 'run' / 'last.pt'}",
            "device=cpu",
            "~analysis.attacks",
            f"+analysis.attacks={attacks}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "run" / "pgd.json").read_text())
    assert written["samples"] == 32
    assert written["clean_acc"] == pytest.approx(final["test_acc"])
    assert written["attacks"]["zero"]["adv_acc"] == written["clean_acc"]
    for name in ("linf_8", "l2_64"):
        assert written["attacks"][name]["adv_loss"] > written["clean_loss"]
        assert written["attacks"][name]["adv_acc"] <= written["clean_acc"]


def test_a_bad_attack_gives_one_line(tmp_path):
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=mlp", "model.hidden=[8]", "optimizer=sgd", "trainer.max_steps=1")
    )
    run(cfg, folder=tmp_path / "run")
    result = subprocess.run(
        [
            sys.executable,
            "analyze.py",
            "analysis=pgd",
            f"checkpoint={tmp_path / 'run' / 'last.pt'}",
            "analysis.attacks.linf_1.norm=l1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "analysis.attacks.linf_1.norm" in lines[0], result.stderr
