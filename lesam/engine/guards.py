"""Guards around each optimizer step against non-finite losses and gradients.

The optimizer already skips, on the device, a step whose loss or gradient is not finite, and
counts it in `skipped_steps`. What is left: the forward passes of a skipped step have moved
BatchNorm's running statistics (a NaN there would stay for good), and a run that skips step
after step is going nowhere and should say so.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lesam.core.errors import UserError
from lesam.optim import SharpnessAware


class NonFiniteSteps(UserError):
    """Every step of a window had a non-finite loss or gradient: the run stops."""


class StepGuard:
    """Call `before()` and `after(step)` around each optimizer step.

    A skipped step leaves BatchNorm's running statistics as they were before it (all buffers in
    one flat copy and one select, on the device). Every `window` steps the skipped-step count is
    read back once; if all the steps of the window were skipped, NonFiniteSteps names them.
    """

    def __init__(self, model: nn.Module, optimizer: SharpnessAware, window: int | None) -> None:
        self.optimizer, self.window = optimizer, window
        layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.statistics = [b for m in layers for b in (m.running_mean, m.running_var) if b is not None]
        self.sizes = [b.numel() for b in self.statistics]
        self.saved = torch.cat(self.statistics) if self.statistics else None
        self.skipped_before: Tensor | None = None
        self.skipped_at_window_start: int | None = None

    def before(self) -> None:
        """Keep the running statistics and the skipped count as they are before the step."""
        if not self.statistics:
            return
        torch.cat(self.statistics, out=self.saved)
        skipped = self.optimizer.skipped_steps
        self.skipped_before = None if skipped is None else skipped.clone()

    def after(self, step: int) -> None:
        """Undo the statistics of a skipped step; at the end of a window, stop if it skipped every step."""
        skipped = self.optimizer.skipped_steps
        if self.statistics and skipped is not None:
            this_step = skipped > (0 if self.skipped_before is None else self.skipped_before)
            kept = torch.where(this_step, self.saved, torch.cat(self.statistics))
            torch._foreach_copy_(self.statistics, kept.split(self.sizes))
        if self.window and step % self.window == 0:
            self._check_window(step, 0 if skipped is None else int(skipped.item()))

    def _check_window(self, step: int, skipped: int) -> None:
        start = self.skipped_at_window_start
        self.skipped_at_window_start = skipped
        if start is not None and skipped - start >= self.window:
            raise NonFiniteSteps(
                f"steps {step - self.window + 1} to {step} all had a non-finite loss or gradient and were skipped; "
                "lower optimizer.lr (or use trainer.precision=fp32), check the data, or set "
                "trainer.nonfinite_window=null to keep going (last.pt is left as it was)"
            )
