"""A trained model back from its run folder, for analyses of a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lesam.core.errors import UserError
from lesam.core.files import load_weights
from lesam.data import DataSplits, build_data
from lesam.engine.precision import resolve_device
from lesam.methods import build_method
from lesam.models import build_model


@dataclass
class LoadedRun:
    """A checkpoint's run config, its model (eval mode, on `device`) and the run's data splits."""

    checkpoint: Path
    cfg: DictConfig
    model: nn.Module
    data: DataSplits
    device: torch.device


def model_state(state: dict) -> dict:
    """The tested weights in a run checkpoint (last.pt; a method's `eval_model` if it has one) or a bare state_dict."""
    if "trainer" in state:
        return state["trainer"].get("method", {}).get("eval_model") or state["trainer"]["model"]
    return state.get("model", state)


def load_run(checkpoint: Path, device: str = "auto") -> LoadedRun:
    """Rebuild the model of the run whose folder holds `checkpoint` (its .hydra/config.yaml) and load it."""
    checkpoint = Path(checkpoint)
    config = checkpoint.parent / ".hydra" / "config.yaml"
    if not checkpoint.is_file():
        raise UserError(f"no checkpoint at '{checkpoint}'; pass checkpoint=<run folder>/last.pt")
    if not config.is_file():
        raise UserError(f"no run config at '{config}'; the checkpoint must sit in the run folder that wrote it")
    cfg = OmegaConf.load(config)
    state = load_weights(checkpoint, advice="pass the last.pt of a finished or running run")
    data = build_data(cfg.dataset)
    weights = model_state(state)
    backbone = build_model(cfg.model, data.num_classes, data.channels, data.image_size, pretrained=False, like=weights)
    model = build_method(cfg, data).wrap(backbone)
    model.load_state_dict(weights)
    target = resolve_device(device, key="device")  # analyze.py's key
    return LoadedRun(checkpoint, cfg, model.to(target).eval(), data, target)
