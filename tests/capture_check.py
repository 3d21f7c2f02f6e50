"""What a captured CUDA graph needs of a training step, checked on the CPU.

A CUDA graph records the kernels of one call and replays them: the same operations, with the same
constants, on the same memory. So a step can be captured only if (1) it never reads a device value
back to the host (a read cannot happen inside a graph, and every one stalls the eager step too), and
(2) every call with the same key issues the same operations on the same persistent tensors with the
same non-tensor arguments: a value decided on the host per step (a random draw, a step count) would
be baked into the graph at capture. `HostReads` checks (1); `StepTrace` records what (2) compares;
`EmulatedCapture` stands in for lesam.engine.cuda_graph.CapturedStep and checks both on every call.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__complex__", "cpu", "numpy"}


class HostRead(AssertionError):
    """A step read a device value back to the host."""


class HostReads(TorchFunctionMode):
    """Fails on any read of a tensor's value by the host (`.item()`, `bool(t)`, `.tolist()`, `.cpu()`, ...)
    and on `torch.cuda.synchronize`, for as long as the block runs."""

    def __enter__(self) -> HostReads:
        self.synchronize = torch.cuda.synchronize
        torch.cuda.synchronize = self._synchronize
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        torch.cuda.synchronize = self.synchronize
        super().__exit__(*exc)

    @staticmethod
    def _synchronize(*args, **kwargs) -> None:
        raise HostRead("torch.cuda.synchronize inside a step")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in READS:
            raise HostRead(f"Tensor.{name} inside a step")
        return func(*args, **(kwargs or {}))


class StepTrace(TorchDispatchMode):
    """The operations of a block, each with its arguments: tensors made inside the block by the order they were
    made, tensors held from before it by their memory, everything else by its value."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple] = []
        self.made: dict[int, int] = {}  # storage address -> order of making, for tensors made in the block
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "profiler":  # torch.optim's record_function markers: no kernels
            return func(*args, **kwargs)
        inputs = {self._address(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        self.ops.append((str(func), tree_map(self._describe, (args, kwargs))))
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and self._address(t) not in inputs:  # new memory (or reused memory)
                self.made[self._address(t)] = self.count
                self.count += 1
        return out

    @staticmethod
    def _address(t: torch.Tensor) -> int:
        return t.untyped_storage().data_ptr()

    def _describe(self, x):
        if not isinstance(x, torch.Tensor):
            return repr(x)
        address = self._address(x)
        where = ("made", self.made[address]) if address in self.made else ("held", address)
        return (*where, x.storage_offset(), tuple(x.shape), x.dtype)


def first_difference(a: list[tuple], b: list[tuple]) -> str:
    """Where two traces part: the first operation that differs, or the length."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"operation {i}: {x} at capture, {y} now"
    return f"{len(a)} operations at capture, {len(b)} now"


class EmulatedCapture:
    """CapturedStep's interface on the CPU: `warmup` plain calls per key and batch shape, then a "capture"
    whose trace every later call must repeat exactly; every call runs under `HostReads`. Like the real
    one, it feeds the step static copies of the batch."""

    def __init__(self, step: Callable, warmup: int = 2) -> None:
        self.step, self.warmup = step, warmup
        self.calls: dict[Hashable, int] = {}
        self.captured: dict[Hashable, tuple[list, torch.Tensor, torch.Tensor]] = {}
        self.replays = 0

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor, key: Hashable = None):
        name = (tuple(inputs.shape), key)
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] <= self.warmup:
            with HostReads():
                return self.step(inputs, labels)
        if name not in self.captured:
            self.captured[name] = ([], inputs.clone(), labels.clone())
        trace, static_inputs, static_labels = self.captured[name]
        static_inputs.copy_(inputs)
        static_labels.copy_(labels)
        with HostReads(), StepTrace() as now:
            outputs = self.step(static_inputs, static_labels)
        if not trace:
            trace.extend(now.ops)
        elif trace != now.ops:
            raise AssertionError(
                f"a replay of key {key!r} differs from its capture: {first_difference(trace, now.ops)}"
            )
        else:
            self.replays += 1
        return outputs
