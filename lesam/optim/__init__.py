"""LE-SAM and the SAM family as drop-in optimizers over one two-pass engine."""

from lesam.optim.asam import ASAM
from lesam.optim.base import SharpnessAware, global_dot, global_norm
from lesam.optim.eigensam import EigenSAM
from lesam.optim.esam import ESAM
from lesam.optim.factory import OPTIMIZERS, build_optimizer
from lesam.optim.fsam import FSAM
from lesam.optim.gsam import GSAM
from lesam.optim.lesam import LESAM
from lesam.optim.loss_scale import LossScaler
from lesam.optim.msam import MSAM
from lesam.optim.plain import Plain
from lesam.optim.sam import SAM
from lesam.optim.schedules import StepSchedule, budget_factor, lr_factor
from lesam.optim.ssam import SSAM

__all__ = [
    "ASAM",
    "ESAM",
    "FSAM",
    "GSAM",
    "LESAM",
    "MSAM",
    "OPTIMIZERS",
    "SAM",
    "SSAM",
    "EigenSAM",
    "LossScaler",
    "Plain",
    "SharpnessAware",
    "StepSchedule",
    "budget_factor",
    "build_optimizer",
    "global_dot",
    "global_norm",
    "lr_factor",
]
