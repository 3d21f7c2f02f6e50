"""Build any optimizer of the project from its config group."""

from __future__ import annotations

import inspect

import torch
from omegaconf import DictConfig

from lesam.core.errors import UserError
from lesam.optim.asam import ASAM
from lesam.optim.base import SharpnessAware
from lesam.optim.eigensam import EigenSAM
from lesam.optim.esam import ESAM
from lesam.optim.fsam import FSAM
from lesam.optim.gsam import GSAM
from lesam.optim.lesam import LESAM
from lesam.optim.msam import MSAM
from lesam.optim.plain import Plain
from lesam.optim.sam import SAM
from lesam.optim.ssam import SSAM

# config name -> class; a method's hyperparameters are the config keys its constructor names
OPTIMIZERS: dict[str, type[SharpnessAware]] = {
    "sgd": Plain,
    "sam": SAM,
    "lesam": LESAM,
    "lesam_plus": LESAM,
    "asam": ASAM,
    "esam": ESAM,
    "fsam": FSAM,
    "eigensam": EigenSAM,
    "gsam": GSAM,
    "ssam": SSAM,
    "msam": MSAM,
}
BASE_KEYS = ("lr", "momentum", "weight_decay", "nesterov")
# optimizer.base -> the base optimizer; it takes the BASE_KEYS its constructor names
BASES: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def method_kwargs(cls: type[SharpnessAware], cfg: DictConfig) -> dict:
    """The config values that `cls`'s constructor takes, besides params and the base optimizer."""
    names = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "params", "base_optimizer")]
    return {n: cfg[n] for n in names if n in cfg and n not in BASE_KEYS}


def build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> SharpnessAware:
    """The optimizer named by `cfg.name` over `model`'s parameters, with SGD (or `cfg.base`, fused) as its base."""
    if cfg.name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{cfg.name}'; choose one of: {', '.join(OPTIMIZERS)}")
    cls, base_cls = OPTIMIZERS[cfg.name], BASES[cfg.base]
    # with their names, so that a method can tell weights from biases (ASAM's metric)
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    accepted = inspect.signature(base_cls).parameters
    base = {k: cfg[k] for k in BASE_KEYS if k in accepted}
    try:
        optimizer = cls(params, base_cls, **method_kwargs(cls, cfg), **base, fused=True)
    except ValueError as error:  # a method's own check on its hyperparameters or base: the user's to fix
        raise UserError(f"optimizer={cfg.name}: {error}") from error
    optimizer.max_grad_norm = cfg.get("grad_clip")
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return optimizer
