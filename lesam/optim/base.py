"""The two-pass engine that SAM, LE-SAM and their relatives share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from lesam.optim.loss_scale import LossScaler

Params = Iterable[Tensor] | Iterable[dict]
COUNTERS = ("skipped_steps", "skipped_in_a_row")  # on-device step counts that a resumed run continues from


def global_norm(tensors: list[Tensor]) -> Tensor:
    """The l2 norm of all tensors together, as a 0-d tensor (no host sync)."""
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


def global_dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """The inner product of two tensor lists read as one vector each, as a 0-d tensor (no host sync)."""
    return torch.stack([torch.vdot(x.flatten(), y.flatten()) for x, y in zip(a, b, strict=True)]).sum()


class SharpnessAware(Optimizer):
    """Wraps a base optimizer: perturb w to w + e, take the gradient there, restore w, descend.

    A method is a subclass that says how large the perturbation is (`radius`) and, where it
    differs from SAM, how it is directed (`perturbation`) or how the gradients are combined
    (`descent_gradient`). The step itself lives here once. The wrapper shares the base
    optimizer's `param_groups` and `state`, so `state_dict()` is the base's, with any method
    buffers stored beside its own (as timm's Lookahead does).

    No step reads a value back to the host: the radius, the overflow flag and the skipped-step
    count stay on the device. A step whose gradient is not finite is skipped on the device when
    the base optimizer has a fused kernel (the factory builds SGD that way).
    """

    passes = 2  # forward-backward passes per step while perturbing
    keeps_clean_grad = False  # whether `descent_gradient` needs the gradient at w
    eps = 1e-12  # keeps g / ||g|| finite when g vanishes
    eta = 0.01  # ASAM's offset in the adaptive metric T = |w| + eta
    steps_per_epoch: int | None = None  # set by a training loop, for rules that count batches within an epoch
    refresh_bn_before_final_test = False  # whether a training loop should recompute BatchNorm statistics at w
    last_grad_norm: Tensor | None = None  # ||g|| the last radius was computed from, where a method keeps it
    last_clipped: Tensor | None = None  # 1 if the last radius was clipped, 0 if not, where a method has a clip

    def __init__(
        self,
        params: Params,
        base_optimizer: type[Optimizer],
        adaptive: bool = False,
        **base_kwargs,
    ) -> None:
        super().__init__(params, dict(base_kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.defaults.update(self.base_optimizer.defaults)
        self.adaptive = adaptive
        first = self.param_groups[0]["params"][0]
        self.budget = torch.ones((), device=first.device, dtype=first.dtype)
        self.perturb_scale = 1.0
        self.max_grad_norm: float | None = None  # clips the descent gradient only
        self.loss_scaler: LossScaler | None = None  # set for fp16
        self.last_rho = torch.zeros(())
        # float32 whatever the weights' dtype: torch's finite check and loss scaling take nothing else
        counter = {"device": first.device, "dtype": torch.float32}
        self._found_inf = torch.zeros((), **counter)  # set if any gradient of this step is not finite
        self._one = torch.ones((), **counter)
        self.skipped_steps = torch.zeros((), **counter)  # steps skipped for non-finite gradients
        self.skipped_in_a_row = torch.zeros((), **counter)  # skipped steps since the last one taken
        self._momentum_ready = False
        self._begun = False  # whether `begin_step` has taken the decisions of the step under way
        self._perturbed: list[Tensor] = []
        self._scratch: dict[str, dict[Tensor, Tensor]] = defaultdict(dict)
        self._weights = self._weight_tensors()

    # ---- what a method defines -------------------------------------------------------------

    def radius(self, norm: Tensor) -> Tensor:
        """The perturbation's length, given the norm of the (metric-scaled) gradient."""
        raise NotImplementedError

    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """e for each parameter: `radius` along g (or T^2 g / ||T g|| when adaptive)."""
        metric = self._metric(params)
        scaled = grads if metric is None else torch._foreach_mul(grads, metric)
        norm = global_norm(scaled)
        self.last_rho = self.radius(norm)
        direction = scaled if metric is None else torch._foreach_mul(scaled, metric)
        return torch._foreach_mul(direction, self.last_rho / (norm + self.eps))

    def descent_gradient(self, grads: list[Tensor], clean: list[Tensor] | None) -> None:
        """Turn the gradient at w + e into the one the base optimizer descends with (in place)."""

    def perturbed_pass(self, closure: Callable[[], Tensor]) -> None:
        """The forward-backward pass at w + e (a method may run it on part of the batch)."""
        closure()

    def extra_state(self) -> dict:
        """Method state that is not per parameter (step counters, RNG states), saved in `state_dict()`."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what `extra_state` returned."""

    def begin_step(self) -> Hashable:
        """Take the next step's host-side decisions (random draws, step counts) and return what shapes its work.

        Called once before each step, outside any captured CUDA graph: a captured step keeps one graph per
        returned value, and its replays see the decisions through tensors that this call fills in place.
        `step` and `first_step` call it themselves when the caller has not.
        """
        self._begun = True
        return self.perturb_scale > 0

    # ---- the step ------------------------------------------------------------------------

    @property
    def perturb_scale(self) -> float:
        """The budget schedule's multiplier (0 turns perturbation off); `budget` holds it on the device."""
        return self._perturb_scale

    @perturb_scale.setter
    def perturb_scale(self, value: float) -> None:
        self._perturb_scale = value
        self.budget.fill_(value)  # in place: radii read this tensor, so a captured step sees each new value

    @property
    def perturbing(self) -> bool:
        """Whether the next step takes two passes (false for one-pass methods or a zero budget)."""
        return self.passes > 1 and self.perturb_scale > 0

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move the weights to w + e; w is kept so that `second_step` restores it bitwise."""
        self._begin_if_needed()
        params, grads = self._params_and_grads()
        self._unscale_and_check(grads)
        torch._foreach_copy_(self._buffers("w", params), params)
        if self.keeps_clean_grad:
            torch._foreach_copy_(self._buffers("g", params), grads)
        torch._foreach_add_(params, self.perturbation(params, grads))
        self._perturbed = params
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore w exactly, then step the base optimizer with the gradient taken at w + e."""
        params = self._perturbed
        grads = [p.grad for p in params]
        self._unscale_and_check(grads)
        torch._foreach_copy_(params, self._buffers("w", params))
        clean = self._buffers("g", params) if self.keeps_clean_grad else None
        self.descent_gradient(grads, clean)
        self._perturbed = []
        self._descend(params)
        self._begun = False
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def plain_step(self) -> None:
        """A step of the base optimizer alone, with the gradient at w."""
        self._begin_if_needed()
        params, grads = self._params_and_grads()
        self._unscale_and_check(grads)
        self._descend(params)
        self._begun = False

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        """One full step; `closure` runs forward and backward and returns the loss (at w)."""
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that runs forward and backward")
        self._begin_if_needed()
        loss = torch.enable_grad()(closure)()
        if self.perturbing:
            self.first_step(zero_grad=True)
            with torch.enable_grad():
                self.perturbed_pass(closure)
            self.second_step()
        else:
            self.plain_step()
        return loss

    # ---- checkpoints ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The base optimizer's state dict, which also holds the method's buffers, the skipped-step counts
        and `extra_state()`."""
        state = self.base_optimizer.state_dict() | {"counters": {n: getattr(self, n).clone() for n in COUNTERS}}
        extra = self.extra_state()
        return state | {"extra": extra} if extra else state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load into the base optimizer and share its new groups and state again."""
        state_dict = dict(state_dict)
        extra = state_dict.pop("extra", None)
        for name, value in state_dict.pop("counters", {}).items():  # absent from checkpoints of older code
            getattr(self, name).copy_(value)
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        if extra is not None:
            self.load_extra_state(extra)

    # ---- internals -----------------------------------------------------------------------

    def _begin_if_needed(self) -> None:
        if not self._begun:
            self.begin_step()

    def _params_and_grads(self) -> tuple[list[Tensor], list[Tensor]]:
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        return params, [p.grad for p in params]

    def _buffers(self, name: str, like: list[Tensor]) -> list[Tensor]:
        """Scratch tensors shaped like `like`, allocated once and reused every step."""
        store = self._scratch[name]
        return [store[p] if p in store else store.setdefault(p, torch.empty_like(p)) for p in like]

    def _metric(self, params: list[Tensor]) -> list[Tensor] | None:
        """ASAM's diagonal metric T = |w| + eta on weight tensors (1 elsewhere), or None for the Euclidean ball."""
        if not self.adaptive:
            return None
        metric = torch._foreach_add(torch._foreach_abs(params), self.eta)
        for p, t in zip(params, metric, strict=True):
            if p not in self._weights:
                t.fill_(1.0)
        return metric

    def _weight_tensors(self) -> set[Tensor]:
        """The tensors ASAM's code scales: those named '*weight*' when the groups carry names, else all.

        The factory passes `model.named_parameters()`, so biases stay in the Euclidean metric as in
        the official ASAM code; without names every tensor counts as a weight.
        """
        weights = set()
        for group in self.param_groups:
            if "param_names" not in group:
                weights.update(group["params"])
                continue
            weights.update(p for p, name in zip(group["params"], group["param_names"], strict=True) if "weight" in name)
        return weights

    def _unscale_and_check(self, grads: list[Tensor]) -> None:
        """Undo fp16 loss scaling and accumulate whether any gradient is not finite."""
        if not grads:
            return
        inv_scale = self.loss_scaler.inv_scale() if self.loss_scaler else self._one
        torch._amp_foreach_non_finite_check_and_unscale_(grads, self._found_inf, inv_scale)

    def _descend(self, params: list[Tensor]) -> None:
        """Clip the descent gradient if asked, then step the base optimizer unless it overflowed."""
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm, foreach=True)
        found_inf = self._found_inf
        if all(group.get("fused") for group in self.param_groups):
            self._init_momentum(params)
            self.base_optimizer.found_inf = found_inf  # the fused kernel skips the update on the device
            self.base_optimizer.step()
        elif not found_inf.item():  # host sync, only for base optimizers without a fused kernel
            self.base_optimizer.step()
        if self.loss_scaler is not None:
            self.loss_scaler.update(found_inf)
        self.skipped_steps += found_inf
        self.skipped_in_a_row.mul_(found_inf).add_(found_inf)  # +1 for a skipped step, back to 0 for a taken one
        found_inf.zero_()

    def _init_momentum(self, params: list[Tensor]) -> None:
        """Zero momentum buffers before the first fused step, so a skipped first step leaves no garbage."""
        if self._momentum_ready:
            return
        self._momentum_ready = True
        for group in self.param_groups:
            if group.get("momentum", 0):
                for p in group["params"]:
                    if p.grad is not None and "momentum_buffer" not in self.state[p]:
                        self.state[p]["momentum_buffer"] = torch.zeros_like(p)
