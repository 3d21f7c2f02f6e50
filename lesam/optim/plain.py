"""The base optimizer alone, behind the same interface as the SAM family."""

from __future__ import annotations

from lesam.optim.base import SharpnessAware


class Plain(SharpnessAware):
    """One pass per step and no perturbation: SGD as the baseline (and before a switch to SAM)."""

    passes = 1
