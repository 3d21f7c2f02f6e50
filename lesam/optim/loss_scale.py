"""Dynamic fp16 loss scaling that stays on the device and allows two unscales per step."""

from __future__ import annotations

import torch
from torch import Tensor


class LossScaler:
    """GradScaler's dynamic rule (back off on overflow, grow after a run of clean steps).

    torch.amp.GradScaler unscales once per step; a two-pass method needs the gradient of each
    pass unscaled (LE-SAM's radius depends on its scale), so the engine unscales both passes
    with `inv_scale()` and calls `update` once, with the overflow flag of the whole step.
    """

    def __init__(
        self,
        device: torch.device | str,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        self.scale_value = torch.full((), init_scale, dtype=torch.float32, device=device)
        self.growth_tracker = torch.zeros((), dtype=torch.int32, device=device)
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval

    def scale(self, loss: Tensor) -> Tensor:
        """The loss multiplied by the current scale, ready for backward."""
        return loss * self.scale_value.to(loss.dtype)

    def inv_scale(self) -> Tensor:
        """1 / scale, computed in double as GradScaler does."""
        return self.scale_value.double().reciprocal().float()

    def update(self, found_inf: Tensor) -> None:
        """Back off after an overflow; grow after `growth_interval` clean steps."""
        torch._amp_update_scale_(
            self.scale_value,
            self.growth_tracker,
            found_inf,
            self.growth_factor,
            self.backoff_factor,
            self.growth_interval,
        )

    def state_dict(self) -> dict:
        """The scale and the count of clean steps since the last change."""
        return {"scale": self.scale_value.clone(), "growth_tracker": self.growth_tracker.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.scale_value.copy_(state["scale"])
        self.growth_tracker.copy_(state["growth_tracker"])
