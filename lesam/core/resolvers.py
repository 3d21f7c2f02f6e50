"""The resolvers configs use: `${run_id:}` names a run's folder, `${by_imbalance_factor:{...}}` picks a
recipe's value for the run's imbalance factor, `${choices:<group>}` lists a group's options in --help."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, Node, OmegaConf

from lesam.core.errors import UserError
from lesam.core.paths import CONFIGS
from lesam.core.run_id import run_id


def by_imbalance_factor(table: dict, *, _root_: DictConfig, _node_: Node) -> Any:
    """The value `table` gives for the run's `dataset.imbalance_factor`."""
    factor = _root_.dataset.imbalance_factor
    for key, value in table.items():
        if factor is not None and float(key) == float(factor):
            return value
    name = _node_._get_full_key(None)
    known = ", ".join(str(k) for k in table)
    raise UserError(
        f"{name} has recipe values for dataset.imbalance_factor {known}, not for {factor}; set {name}=<value>"
    )


def group_choices(group: str) -> str:
    """The options of a config group, for `--help`: the names of configs/<group>/*.yaml."""
    return ", ".join(sorted(path.stem for path in (CONFIGS / group).glob("*.yaml")))


def register_resolvers() -> None:
    """Make the resolvers available to Hydra's composition (train.py, analyze.py and the planner call this)."""
    resolvers = {
        "run_id": lambda *, _root_: run_id(_root_),
        "by_imbalance_factor": by_imbalance_factor,
        "choices": group_choices,  # the --help templates'
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
