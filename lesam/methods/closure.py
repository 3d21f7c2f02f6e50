"""One batch's forward and backward, as the closure the optimizers call once per pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lesam.methods.batch import Batch
from lesam.optim import LossScaler


@contextmanager
def frozen_bn_statistics(model: nn.Module) -> Iterator[None]:
    """BatchNorm still normalises with batch statistics but leaves its running statistics alone."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(layers, momenta, strict=False):
            m.momentum = momentum


def backward_seed(loss: Tensor) -> Tensor:
    """1, or NaN when the loss is not finite: NaN then reaches the gradients (at least the output
    layer's), so the optimizer's on-device finite check skips the step, with no host sync."""
    return torch.ones_like(loss).masked_fill_(~torch.isfinite(loss), float("nan"))


class BatchClosure:
    """Runs forward and backward on a batch and returns the detached mean loss.

    `loss(model, batch, autocast)` is the training method's: it runs the forward pass(es) under
    autocast and returns the mean loss and the logits. The first call is the pass at w: its logits
    are kept for the training accuracy, and it runs inside `first_pass` (DDP's no_sync for
    per-process perturbations). Later calls are perturbed passes; with `freeze_bn` they leave
    BatchNorm's running statistics unchanged. A step whose loss is not finite is skipped like one
    whose gradient is not. A call may take the indices of the samples it runs on (ESAM's data
    selection); `sample_losses` and `differentiable_loss` serve methods that need more than a gradient.
    """

    def __init__(
        self,
        model: nn.Module,
        batch: Batch,
        autocast,
        loss: Callable[[nn.Module, Batch, AbstractContextManager], tuple[Tensor, Tensor]],
        loss_scaler: LossScaler | None = None,
        freeze_bn: bool = False,
        first_pass: Callable[[], AbstractContextManager] = nullcontext,
    ) -> None:
        self.model, self.batch, self.autocast, self.loss = model, batch, autocast, loss
        self.loss_scaler, self.freeze_bn, self.first_pass = loss_scaler, freeze_bn, first_pass
        self.calls = 0
        self.logits: Tensor | None = None

    def __call__(self, samples: Tensor | None = None) -> Tensor:
        """Forward and backward on the batch, or on the samples whose indices are given."""
        batch = self.batch if samples is None else self.batch.subset(samples)
        with self.first_pass() if self.calls == 0 else nullcontext():
            with self._bn_context():
                loss, logits = self.loss(self.model, batch, self.autocast)
            if self.calls == 0:
                self.logits = logits.detach()
            self.calls += 1
            (self.loss_scaler.scale(loss) if self.loss_scaler else loss).backward(backward_seed(loss))
        return loss.detach()

    @torch.no_grad()
    def sample_losses(self, logits: Tensor | None = None) -> Tensor:
        """Each sample's loss: from `logits`, or from a forward pass (no backward) at the current weights."""
        if logits is None:
            with self._bn_context():
                _, logits = self.loss(self.model, self.batch, self.autocast)
        return F.cross_entropy(logits.float(), self.batch.labels, reduction="none")

    def differentiable_loss(self) -> Tensor:
        """The mean loss at the current weights with its graph kept, for Hessian-vector products.

        The model runs in eval mode, so BatchNorm normalises with its running statistics and
        leaves them alone (as the Eigen-SAM code does), and uncompiled, since compiled graphs
        do not support double backward. No backward is run and the pass is not counted.
        """
        model = getattr(self.model, "_orig_mod", self.model)
        model = getattr(model, "module", model)  # the network inside DDP: a local product, no collectives
        training = model.training
        model.eval()
        try:
            with torch.enable_grad():
                return self.loss(model, self.batch, self.autocast)[0]
        finally:
            model.train(training)

    def _bn_context(self) -> AbstractContextManager:
        """Frozen BatchNorm statistics for passes after the first when asked, else nothing."""
        return frozen_bn_statistics(self.model) if self.freeze_bn and self.calls else nullcontext()
