"""A training batch: what one step's passes all run on."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from torch import Tensor


@dataclass
class Batch:
    """A training batch; `labels` are what the training accuracy is scored against."""

    inputs: Tensor
    labels: Tensor

    def subset(self, samples: Tensor | slice) -> Batch:
        """The batch restricted to `samples` (indices, or a slice: views): every per-sample tensor field is indexed."""
        n = len(self.labels)
        per_sample = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v[samples] for k, v in per_sample.items() if isinstance(v, Tensor) and len(v) == n})
