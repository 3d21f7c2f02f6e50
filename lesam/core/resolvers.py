"""The resolvers configs use: `${run_id:}` names a run's folder, `${by_imbalance_factor:{...}}` picks a
recipe's value for the run's imbalance factor, `${choices:<group>}` lists a group's options in --help."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from omegaconf import DictConfig, Node, OmegaConf

from lesam.core.errors import UserError
from lesam.core.paths import CONFIGS
from lesam.core.run_id import run_id

# while keys_without_recipe_value lists them: the keys found without a value for the run's factor
_FOUND: ContextVar[list[str] | None] = ContextVar("keys without a recipe value", default=None)


def by_imbalance_factor(table: dict, *, _root_: DictConfig, _node_: Node) -> Any:
    """The value `table` gives for the run's `dataset.imbalance_factor`; without one, a UserError naming every
    key that has none (not only the first one resolved)."""
    factor = _root_.dataset.imbalance_factor
    for key, value in table.items():
        if factor is not None and float(key) == float(factor):
            return value
    found = _FOUND.get()
    if found is not None:  # listing them: note this one and go on
        found.append(_node_._get_full_key(None))
        return None
    names = keys_without_recipe_value(_root_)
    known = ", ".join(str(k) for k in table)
    settings = " ".join(f"{name}=<value>" for name in names)
    raise UserError(
        f"{', '.join(names)} {'has' if len(names) == 1 else 'have'} recipe values for dataset.imbalance_factor "
        f"{known}, not for {factor}; set {settings}"
    )


def keys_without_recipe_value(root: DictConfig) -> list[str]:
    """The dotted keys whose by_imbalance_factor table has no value for the run's imbalance factor."""
    found: list[str] = []
    token = _FOUND.set(found)
    try:
        for key in _recipe_keys(OmegaConf.to_container(root, resolve=False)):
            OmegaConf.select(root, key)
    finally:
        _FOUND.reset(token)
    return found


def _recipe_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """The dotted keys of a config's values chosen by ${by_imbalance_factor:...}."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _recipe_keys(value, f"{prefix}{key}.")
    elif isinstance(node, str) and "${by_imbalance_factor:" in node:
        yield prefix[:-1]


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
