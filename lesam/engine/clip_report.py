"""LE-SAM's radius clip in a run's logs: a warning when it takes over, and its share of the run's steps."""

from __future__ import annotations

from omegaconf import DictConfig

TAKEN_OVER = 0.5  # the share of an epoch's perturbed steps above which the clip, not delta, sets the radius


def clip_warning(optimizer_cfg: DictConfig, record: dict) -> str | None:
    """One line when the radius was clipped in more than half of the epoch's perturbed steps, else None."""
    fraction = record.get("clipped_fraction")
    if fraction is None or fraction <= TAKEN_OVER:
        return None
    rho_max, norm = optimizer_cfg.rho_max, record["grad_norm_mean"]
    return (
        f"epoch {record['epoch']}: LE-SAM acted as SAM with rho = rho_max = {rho_max:g}: its radius was clipped in "
        f"{fraction:.0%} of the steps; the gradient norm averaged {norm:.3g} (the clip binds below "
        f"delta/rho_max = {record['delta'] / rho_max:.3g}), and optimizer.delta={rho_max / 2 * norm:.3g} "
        "(rho_max/2 * ||g||) would put rho_t at rho_max/2 (docs/optimizers.md: choosing delta)"
    )


def run_clipped_fraction(history: list[dict]) -> float | None:
    """The share of a run's perturbed steps whose radius was clipped, from its metrics lines; None without a clip."""
    lines = [r for r in history if "clipped_steps" in r]
    if not lines:
        return None
    return sum(r["clipped_steps"] for r in lines) / sum(r["perturbed_steps"] for r in lines)
