"""One batch's forward and backward, as the closure the optimizers call once per pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lesam.methods.base import upcast
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


def split_sizes(n: int, parts: int) -> list[int]:
    """The sizes of `parts` contiguous micro-batches of n samples: as equal as can be, none empty."""
    size, rest = divmod(n, parts)
    return [size + 1] * rest + [size] * (parts - rest) if size else [1] * n


class BatchClosure:
    """Runs forward and backward on a batch and returns the detached mean loss.

    `loss(model, batch, autocast)` is the training method's: it runs the forward pass(es) under
    autocast and returns the mean loss and the logits. The first call is the pass at w: its logits
    are kept for the training accuracy, and it runs inside `first_pass` (DDP's no_sync for
    per-process perturbations). Later calls are perturbed passes; with `freeze_bn` they leave
    BatchNorm's running statistics unchanged. A step whose loss is not finite is skipped like one
    whose gradient is not. A call may take the indices of the samples it runs on (ESAM's data
    selection); `sample_losses` and `hessian_products` serve methods that need more than a gradient.

    Gradient accumulation: with `micro_batches` k > 1 every call runs the batch as k contiguous
    slices, each loss weighted by its share of the batch, so the gradients add up to the whole
    batch's mean-loss gradient while only one slice's activations are held. All slices but the
    last run under `no_sync` (DDP then all-reduces once per call); the loss returned and the
    logits kept are the whole batch's.
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
        micro_batches: int = 1,
        no_sync: Callable[[], AbstractContextManager] = nullcontext,
    ) -> None:
        self.model, self.batch, self.autocast, self.loss = model, batch, autocast, loss
        self.loss_scaler, self.freeze_bn, self.first_pass = loss_scaler, freeze_bn, first_pass
        self.micro_batches, self.no_sync = micro_batches, no_sync
        self.calls = 0
        self.logits: Tensor | None = None

    def __call__(self, samples: Tensor | None = None) -> Tensor:
        """Forward and backward on the batch, or on the samples whose indices are given."""
        batch = self.batch if samples is None else self.batch.subset(samples)
        parts, first = self._parts(batch), self.calls == 0
        total, logits = None, []
        with self.first_pass() if first else nullcontext(), self._bn_context():
            for i, (part, share) in enumerate(parts):
                with nullcontext() if i == len(parts) - 1 else self.no_sync():  # all-reduce with the last
                    loss, part_logits = self.loss(self.model, part, self.autocast)
                    weighted = loss if share == 1 else loss * share
                    (self.loss_scaler.scale(weighted) if self.loss_scaler else weighted).backward(backward_seed(loss))
                total = weighted.detach() if total is None else total + weighted.detach()
                if first:
                    logits.append(part_logits.detach())
        if first:
            self.logits = logits[0] if len(logits) == 1 else torch.cat(logits)
        self.calls += 1
        return total

    @torch.no_grad()
    def sample_losses(self, logits: Tensor | None = None) -> Tensor:
        """Each sample's loss: from `logits`, or from a forward pass (no backward) at the current weights."""
        if logits is None:
            with self._bn_context():
                parts = [self.loss(self.model, part, self.autocast)[1] for part, _ in self._parts(self.batch)]
            logits = torch.cat(parts)
        return F.cross_entropy(upcast(logits), self.batch.labels, reduction="none")

    @contextmanager
    def hessian_products(self, params: list[Tensor]) -> Iterator[Callable[[list[Tensor]], list[Tensor]]]:
        """v -> Hv, H the Hessian of the batch's mean loss in `params`, for as long as the block runs.

        The model runs in eval mode, so BatchNorm normalises with its running statistics and
        leaves them alone (as the Eigen-SAM code does), and uncompiled, since compiled graphs
        do not support double backward. No pass is counted. With one micro-batch the gradient's
        graph is built once and serves every product; with several, each product rebuilds it
        micro-batch by micro-batch (a forward and a backward more per product), so that memory
        stays that of one micro-batch and Hv is still the whole batch's.
        """
        model = getattr(self.model, "_orig_mod", self.model)
        model = getattr(model, "module", model)  # the network inside DDP: a local product, no collectives
        training = model.training
        model.eval()
        try:
            parts = self._parts(self.batch)
            kept = self._gradient_graph(model, *parts[0], params) if len(parts) == 1 else None

            @torch.enable_grad()
            def product(vectors: list[Tensor]) -> list[Tensor]:
                total = None
                for part, share in parts:
                    grads = kept if kept is not None else self._gradient_graph(model, part, share, params)
                    hv = torch.autograd.grad(grads, params, grad_outputs=vectors, retain_graph=kept is not None)
                    total = list(hv) if total is None else torch._foreach_add(total, hv)
                return total

            yield product
        finally:
            model.train(training)

    @torch.enable_grad()
    def _gradient_graph(self, model: nn.Module, part: Batch, share: float, params: list[Tensor]) -> tuple[Tensor, ...]:
        """The gradient of a micro-batch's weighted loss, with its graph, for products with the Hessian."""
        loss = self.loss(model, part, self.autocast)[0]
        return torch.autograd.grad(loss if share == 1 else loss * share, params, create_graph=True)

    def _parts(self, batch: Batch) -> list[tuple[Batch, float]]:
        """The micro-batches of `batch` (views of contiguous slices) and each one's share of it."""
        n = len(batch.labels)
        if self.micro_batches == 1:
            return [(batch, 1.0)]
        parts, start = [], 0
        for size in split_sizes(n, self.micro_batches):
            parts.append((batch.subset(slice(start, start + size)), size / n))
            start += size
        return parts

    def _bn_context(self) -> AbstractContextManager:
        """Frozen BatchNorm statistics for passes after the first when asked, else nothing."""
        return frozen_bn_statistics(self.model) if self.freeze_bn and self.calls else nullcontext()
