"""Robustness of a checkpoint to PGD attacks (Madry et al., ICLR 2018) under l_inf and l_2 balls.

The attacks work in [0, 1] pixel space: test images are un-normalised with the data set's mean and
std, and that normalisation runs inside the attacked model. An attack optionally starts at a random
point of the epsilon ball, then takes `steps` steps of `step_size` along the sign (l_inf) or the
direction (l_2) of the input gradient of the cross-entropy, projecting back onto the ball and into
[0, 1] after each; the last iterate is scored. `epsilon` and `step_size` are in units of 1/255, as
robustness papers quote them (Zhang et al. 2024's eval.py: PGD-10, l_inf 1 and 2, l_2 16 and 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lesam.analysis.loaded_run import LoadedRun
from lesam.core.errors import UserError
from lesam.data.workers import usable_workers
from lesam.engine.precision import autocast, resolve_precision

NORMS = ("linf", "l2")


class Normalized(nn.Module):
    """`model` fed with images in [0, 1]: (x - mean) / std is applied first."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the normalised images."""
        return self.model((x - self.mean) / self.std)


def project(delta: Tensor, x: Tensor, norm: str, epsilon: float) -> Tensor:
    """delta moved into the epsilon ball of `norm`, then so that x + delta stays in [0, 1]."""
    if norm == "linf":
        delta = delta.clamp(-epsilon, epsilon)
    else:
        delta = delta.flatten(1).renorm(2, 0, epsilon).view_as(delta)
    return (x + delta).clamp(0, 1) - x


def random_start(x: Tensor, norm: str, epsilon: float) -> Tensor:
    """A random point of the ball: uniform per pixel (l_inf), or a random direction at a uniform radius (l_2)."""
    if norm == "linf":
        return torch.empty_like(x).uniform_(-epsilon, epsilon)
    direction = torch.randn_like(x)
    lengths = direction.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
    radius = torch.rand(len(x), *[1] * (x.dim() - 1), device=x.device)
    return direction / lengths * radius * epsilon


def attack(
    model: nn.Module, x: Tensor, y: Tensor, norm: str, epsilon: float, step_size: float, steps: int, random: bool
) -> Tensor:
    """PGD adversarial images for (x, y) in [0, 1] pixel space; `epsilon` and `step_size` in pixel units."""
    delta = project(random_start(x, norm, epsilon) if random else torch.zeros_like(x), x, norm, epsilon)
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x + delta).float(), y), delta)
        if norm == "linf":
            direction = grad.sign()
        else:
            direction = grad / (grad.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1)) + 1e-10)
        delta = project(delta.detach() + step_size * direction, x, norm, epsilon)
    return (x + delta).detach()


def attack_settings(name: str, a: DictConfig) -> dict:
    """`attack`'s keywords from one entry of the config's `attacks` (in units of 1/255), checked."""
    if a.norm not in NORMS:
        raise UserError(f"analysis.attacks.{name}.norm='{a.norm}'; choose one of: {', '.join(NORMS)}")
    if not (a.epsilon >= 0 and a.step_size >= 0 and isinstance(a.steps, int) and a.steps >= 0):
        raise UserError(f"analysis.attacks.{name}: epsilon and step_size must be >= 0 and steps an integer >= 0")
    return {
        "norm": a.norm,
        "epsilon": a.epsilon / 255,
        "step_size": a.step_size / 255,
        "steps": a.steps,
        "random": a.random_start,
    }


def pgd(cfg: DictConfig, run: LoadedRun) -> dict:
    """Clean accuracy and, per attack of `cfg.attacks`, accuracy and loss on the attacked test split."""
    data = run.data
    if data.mean is None:
        raise UserError(f"data set {run.cfg.dataset.name} does not say how it normalises; PGD needs its mean and std")
    attacks = {name: attack_settings(name, a) for name, a in cfg.attacks.items()}
    model = Normalized(run.model, data.mean, data.std).to(run.device).eval()
    model.requires_grad_(False)
    amp = autocast(resolve_precision(cfg.precision, run.device, key="analysis.precision"), run.device)
    torch.manual_seed(cfg.seed)
    names = ["clean", *attacks]
    totals = torch.zeros(len(names), 2, dtype=torch.float64)  # summed loss, correct predictions
    for inputs, labels in DataLoader(
        data.test, batch_size=cfg.batch_size, num_workers=usable_workers(cfg.workers, "analysis.workers")
    ):
        labels = labels.to(run.device)
        x = (inputs.to(run.device) * model.std + model.mean).clamp(0, 1)
        for index, name in enumerate(names):
            with amp:
                images = x if name == "clean" else attack(model, x, labels, **attacks[name])
            with torch.no_grad(), amp:
                logits = model(images).float()
            totals[index, 0] += F.cross_entropy(logits, labels, reduction="sum").item()
            totals[index, 1] += (logits.argmax(dim=1) == labels).sum().item()
    samples = len(data.test)
    loss, accuracy = (totals / max(samples, 1)).T.tolist()
    result = {"samples": samples, "clean_loss": loss[0], "clean_acc": 100 * accuracy[0], "attacks": {}}
    for index, name in enumerate(names[1:], start=1):
        settings = dict(cfg.attacks[name])
        result["attacks"][name] = settings | {"adv_loss": loss[index], "adv_acc": 100 * accuracy[index]}
    return result
