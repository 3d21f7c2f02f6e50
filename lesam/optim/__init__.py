"""LE-SAM and the SAM family as drop-in optimizers over one two-pass engine."""

from lesam.optim.base import SharpnessAware, global_norm
from lesam.optim.factory import OPTIMIZERS, build_optimizer
from lesam.optim.lesam import LESAM
from lesam.optim.loss_scale import LossScaler
from lesam.optim.plain import Plain
from lesam.optim.sam import SAM
from lesam.optim.schedules import StepSchedule, budget_factor, lr_factor

__all__ = [
    "LESAM",
    "OPTIMIZERS",
    "SAM",
    "LossScaler",
    "Plain",
    "SharpnessAware",
    "StepSchedule",
    "budget_factor",
    "build_optimizer",
    "global_norm",
    "lr_factor",
]
