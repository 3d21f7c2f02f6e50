"""One batch's forward and backward, as the closure the optimizers call once per pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


class BatchClosure:
    """Runs forward and backward on (inputs, labels) and returns the detached mean loss.

    The first call is the pass at w: its logits are kept for the training accuracy. Later calls
    are perturbed passes; with `freeze_bn` they leave BatchNorm's running statistics unchanged.
    A call may take the indices of the samples it runs on (ESAM's data selection);
    `sample_losses` and `differentiable_loss` serve methods that need more than a gradient.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Tensor,
        labels: Tensor,
        autocast,
        loss_scaler: LossScaler | None = None,
        freeze_bn: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        self.model, self.inputs, self.labels = model, inputs, labels
        self.autocast, self.loss_scaler = autocast, loss_scaler
        self.freeze_bn, self.label_smoothing = freeze_bn, label_smoothing
        self.calls = 0
        self.logits: Tensor | None = None

    def __call__(self, samples: Tensor | None = None) -> Tensor:
        """Forward and backward on the batch, or on the samples whose indices are given."""
        inputs, labels = (self.inputs, self.labels) if samples is None else (self.inputs[samples], self.labels[samples])
        with self.autocast, self._bn_context():
            logits = self.model(inputs)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        if self.calls == 0:
            self.logits = logits.detach()
        self.calls += 1
        (self.loss_scaler.scale(loss) if self.loss_scaler else loss).backward()
        return loss.detach()

    @torch.no_grad()
    def sample_losses(self, logits: Tensor | None = None) -> Tensor:
        """Each sample's loss: from `logits`, or from a forward pass (no backward) at the current weights."""
        if logits is None:
            with self.autocast, self._bn_context():
                logits = self.model(self.inputs)
        return F.cross_entropy(logits.float(), self.labels, reduction="none", label_smoothing=self.label_smoothing)

    def differentiable_loss(self) -> Tensor:
        """The mean loss at the current weights with its graph kept, for Hessian-vector products.

        The model runs in eval mode, so BatchNorm normalises with its running statistics and
        leaves them alone (as the Eigen-SAM code does), and uncompiled, since compiled graphs
        do not support double backward. No backward is run and the pass is not counted.
        """
        model = getattr(self.model, "_orig_mod", self.model)
        training = model.training
        model.eval()
        try:
            with torch.enable_grad(), self.autocast:
                logits = model(self.inputs)
                return F.cross_entropy(logits.float(), self.labels, label_smoothing=self.label_smoothing)
        finally:
            model.train(training)

    def _bn_context(self) -> AbstractContextManager:
        """Frozen BatchNorm statistics for passes after the first when asked, else nothing."""
        return frozen_bn_statistics(self.model) if self.freeze_bn and self.calls else nullcontext()
