"""Training methods that change the loss or the loop: ERM (the default), GLMC, ERM++."""

from __future__ import annotations

from omegaconf import DictConfig

from lesam.core.errors import UserError
from lesam.data import DataSplits
from lesam.methods.base import Method, WarmStart
from lesam.methods.batch import Batch
from lesam.methods.ermpp import ERMPlusPlus
from lesam.methods.glmc import GLMC

# config name (configs/method/<name>.yaml) -> class
METHODS: dict[str, type[Method]] = {"erm": Method, "glmc": GLMC, "ermpp": ERMPlusPlus}


def build_method(cfg: DictConfig, data: DataSplits) -> Method:
    """The method `cfg.method.name` names (ERM for configs written before methods existed)."""
    name = cfg.method.name if "method" in cfg else "erm"
    if name not in METHODS:
        raise UserError(f"unknown method '{name}'; choose one of: {', '.join(METHODS)}")
    return METHODS[name](cfg, data)


__all__ = ["METHODS", "Batch", "Method", "WarmStart", "build_method"]
