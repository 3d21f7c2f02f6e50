"""Guards around each optimizer step against non-finite losses and gradients, and at the end of a run.

The optimizer already skips, on the device, a step whose loss or gradient is not finite, and
counts it in `skipped_steps` and `skipped_in_a_row`. What is left: the forward passes of a
skipped step have moved BatchNorm's running statistics (a NaN there would stay for good), a
run that skips step after step is going nowhere and should say so, and a run that ends with
non-finite weights or test loss (fewer steps than the window) has diverged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lesam.core.errors import UserError
from lesam.optim import SharpnessAware


class NonFiniteSteps(UserError):
    """`window` consecutive steps had a non-finite loss or gradient: the run stops."""


class Diverged(UserError):
    """The run ended with a non-finite test loss or weights: final.json says so, and tables leave it out."""


def divergence(model: nn.Module, test_loss: float | None) -> str | None:
    """Why a run that has ended counts as diverged (its last test loss or its weights are not finite), or None."""
    reasons = [f"its test loss is {test_loss}"] if test_loss is not None and not math.isfinite(test_loss) else []
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    if tensors and not torch.stack([torch.isfinite(t).all() for t in tensors]).all():
        reasons.append("its weights are not finite")
    return " and ".join(reasons) or None


class StepGuard:
    """Call `before()` and `after(step)` around each optimizer step.

    A skipped step leaves BatchNorm's running statistics as they were before it (all buffers in
    one flat copy and one select, on the device). The run stops with NonFiniteSteps once `window`
    consecutive steps were skipped. The count of skipped steps in a row stays on the device and is
    read back only when it could have reached `window`: read as c after step s, it cannot reach
    `window` before step s + window - c, so a healthy run reads it once every `window` steps.
    """

    def __init__(self, model: nn.Module, optimizer: SharpnessAware, window: int | None) -> None:
        self.optimizer, self.window = optimizer, window
        layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.statistics = [b for m in layers for b in (m.running_mean, m.running_var) if b is not None]
        self.sizes = [b.numel() for b in self.statistics]
        self.saved = torch.cat(self.statistics) if self.statistics else None
        self.next_check = window or 0  # the first step after which the count could reach `window`

    def before(self) -> None:
        """Keep the running statistics as they are before the step."""
        if self.statistics:
            torch.cat(self.statistics, out=self.saved)

    def after(self, step: int) -> None:
        """Undo the statistics of a skipped step; stop once `window` steps in a row were skipped."""
        in_a_row = self.optimizer.skipped_in_a_row
        if self.statistics:
            kept = torch.where(in_a_row > 0, self.saved, torch.cat(self.statistics))  # > 0: this step was skipped
            torch._foreach_copy_(self.statistics, kept.split(self.sizes))
        if self.window and step >= self.next_check:
            self._check(step, int(in_a_row.item()))

    def _check(self, step: int, in_a_row: int) -> None:
        if in_a_row >= self.window:
            raise NonFiniteSteps(
                f"steps {step - in_a_row + 1} to {step} all had a non-finite loss or gradient and were skipped; "
                "lower optimizer.lr (or use trainer.precision=fp32), check the data, or set "
                "trainer.nonfinite_window=null to keep going (last.pt is left as it was)"
            )
        self.next_check = step + self.window - in_a_row
