"""Replay a whole training step as one CUDA graph: no Python or launch overhead per kernel."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Hashable

import torch
from torch import Tensor

Step = Callable[[Tensor, Tensor], tuple[Tensor, ...]]


@functools.cache
def side_stream(device: int) -> torch.cuda.Stream:
    """One warm-up stream per device for the whole process: cuBLAS keeps a workspace (tens of MB) for each
    stream it has run on until the process ends, so a new stream per captured step would add one each time."""
    return torch.cuda.Stream(device)


class CapturedStep:
    """Calls `step(inputs, labels)` eagerly for a few warm-up calls, then captures and replays it.

    Every call is a real training step, so the captured path computes what the eager one does.
    One graph is kept per input shape and `key` (the caller's name for anything that changes the
    step's structure, such as whether it perturbs); the graphs share one memory pool. The step
    must read everything that changes between steps from tensors (learning rate, budget), and
    its outputs are overwritten by the next replay.
    """

    def __init__(self, step: Step, warmup: int = 3) -> None:
        self.step, self.warmup = step, warmup
        self.seen: Counter = Counter()
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, Tensor, Tensor, tuple[Tensor, ...]]] = {}
        self.pool = torch.cuda.graph_pool_handle()
        self.side_stream = side_stream(torch.cuda.current_device())

    def __call__(self, inputs: Tensor, labels: Tensor, key: Hashable = None) -> tuple[Tensor, ...]:
        name = (tuple(inputs.shape), key)
        if name not in self.graphs:
            self.seen[name] += 1
            if self.seen[name] <= self.warmup:
                return self._on_side_stream(inputs, labels)
            self.graphs[name] = self._capture(inputs, labels)
        graph, static_inputs, static_labels, outputs = self.graphs[name]
        static_inputs.copy_(inputs)
        static_labels.copy_(labels)
        graph.replay()
        return outputs

    def _on_side_stream(self, inputs: Tensor, labels: Tensor) -> tuple[Tensor, ...]:
        """An eager step on a side stream, as capture requires of warm-up (lazy init, autotuning)."""
        self.side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side_stream):
            outputs = self.step(inputs, labels)
        torch.cuda.current_stream().wait_stream(self.side_stream)
        return outputs

    def _capture(self, inputs: Tensor, labels: Tensor) -> tuple:
        """Record the step on static copies of the inputs; the caller replays it for this batch."""
        static_inputs, static_labels = inputs.clone(), labels.clone()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            outputs = self.step(static_inputs, static_labels)
        return graph, static_inputs, static_labels, outputs
