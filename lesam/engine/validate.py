"""Checks of a composed config, run before anything is built or written.

In order: no key deleted on the command line (`~key`), multirun-only choices only with `-m`, each
group's `name` the option chosen for it, the schema (every key of a group node, e.g. `trainer.epochs`,
must be defined by a file of that group under configs/, with a value of the same type), then the
ranges below.
Hydra itself rejects an unknown key on the command line; the schema also catches one added with
`+key=...` or misspelt in an experiment preset, which Hydra would merge without a word.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lesam.core.errors import UserError
from lesam.core.paths import CONFIGS
from lesam.engine import distributed
from lesam.models import config_problem

_MISSING = object()
# NumPy's seed range; torch's 64-bit generators then take every epoch's seed too (seed * 1_000_003 + epoch)
SEED_LIMIT = 2**32
MULTIRUN_ONLY = {"sweep": None, "hydra/launcher": "basic"}  # group -> its choice in a run without -m
KINDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string", "list": "a list"}
ALSO = {"trainer.cuda_graph": {"bool"}}  # kinds a key takes besides its files' (auto, or true/false)


def choice(*options: str) -> tuple[Callable[[Any], bool], str]:
    """A rule: the value must be one of `options`."""
    return (lambda v: v in options), f"must be one of {', '.join(options)}"


# key -> (test, what the value must be, optional hint); keys absent from a config are skipped
Rules = dict[str, tuple[Callable[[Any], bool], str] | tuple[Callable[[Any], bool], str, str]]
SEED = (lambda v: isinstance(v, int) and 0 <= v < SEED_LIMIT, f"must be an integer from 0 to {SEED_LIMIT - 1}")
RULES: Rules = {
    "seed": SEED,
    "optimizer.lr": (lambda v: v > 0, "must be > 0"),
    "optimizer.momentum": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "optimizer.weight_decay": (lambda v: v >= 0, "must be >= 0"),
    "optimizer.rho": (lambda v: v > 0, "must be > 0", "SAM's usual values are 0.05 to 0.2"),
    "optimizer.delta": (lambda v: v >= 0, "must be >= 0", "the paper uses 0.3 to 0.5"),
    "optimizer.rho_max": (lambda v: v is None or v > 0, "must be > 0 or null (no clip)"),
    "optimizer.eps": (lambda v: v > 0, "must be > 0"),
    "optimizer.alpha": (lambda v: v >= 0, "must be >= 0", "LE-SAM+ uses 0.5 to 0.6"),
    "optimizer.grad_clip": (lambda v: v is None or v > 0, "must be > 0 or null"),
    "optimizer.base": choice("sgd", "adam"),
    "trainer.steps": (lambda v: v is None or (isinstance(v, int) and v >= 1), "must be an integer >= 1 or null"),
    "optimizer.delta_warmup_epochs": (lambda v: v is None or v >= 0, "must be >= 0 or null"),
    "optimizer.anneal_start_epoch": (lambda v: v is None or v >= 0, "must be >= 0 or null"),
    "optimizer.start_epoch": (lambda v: v is None or v >= 0, "must be >= 0 or null"),
    "optimizer.eta": (lambda v: v >= 0, "must be >= 0", "ASAM uses 0.01"),
    "optimizer.beta": (lambda v: 0 < v <= 1, "must be in (0, 1]", "ESAM uses 0.5 to 0.6; 1 perturbs every tensor"),
    "optimizer.gamma": (lambda v: 0 < v <= 1, "must be in (0, 1]", "ESAM uses 0.5; 1 keeps the whole batch"),
    "optimizer.sigma": (lambda v: v >= 0, "must be >= 0", "F-SAM uses 1"),
    "optimizer.lmbda": (lambda v: 0 <= v < 1, "must be in [0, 1)", "F-SAM uses 0.6 to 0.95"),
    "optimizer.rho_min": (lambda v: v >= 0, "must be >= 0"),
    "optimizer.freq": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "optimizer.power_iters": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "schedule.warmup_epochs": (lambda v: v >= 0, "must be >= 0"),
    "trainer.epochs": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.max_steps": (lambda v: v is None or (isinstance(v, int) and v >= 1), "must be an integer >= 1 or null"),
    "trainer.batch_size": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.accumulation_steps": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.eval_batch_size": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.eval_every": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.workers": (lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0"),
    "trainer.label_smoothing": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "trainer.device": choice("auto", "cpu", "cuda"),
    "trainer.loader": choice("auto", "torch", "gpu"),
    "trainer.cuda_graph": (lambda v: v == "auto" or isinstance(v, bool), "must be auto, true or false"),
    "trainer.compile": (
        lambda v: v is None or isinstance(v, bool) or v in COMPILE_MODES,
        "must be null, true, false or a mode",
    ),
    "trainer.precision": choice("auto", "bf16", "fp16", "fp32"),
    "trainer.bn_second_pass": choice("update", "freeze"),
    "trainer.nonfinite_window": (lambda v: v is None or (isinstance(v, int) and v >= 1), "must be an integer >= 1"),
    "optimizer.perturb_sync": choice("global", "local"),
    "optimizer.plus_form": choice("paper", "authors"),
    "trainer.rho_every": (lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0 (0 = none)"),
    "trainer.lpf.every": (lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0 (0 = off)"),
    "trainer.lpf.sigma": (lambda v: v >= 0, "must be >= 0"),
    "trainer.lpf.samples": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "trainer.lpf.batches": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "output_root": (lambda v: isinstance(v, str) and v.strip("/ ") != "", "must name a folder other than /"),
    "dataset.seed": SEED,
    "dataset.split_seed": SEED,
    "dataset.num_classes": (lambda v: isinstance(v, int) and v >= 2, "must be an integer >= 2"),
    "dataset.num_train": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "dataset.num_test": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1 (a run ends with a test)"),
    "dataset.image_size": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "dataset.channels": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "model.hidden": (lambda v: all(isinstance(w, int) and w >= 1 for w in v), "must be a list of integers >= 1"),
    "model.width": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "model.widen_factor": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "model.dropout": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
}


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def validate(cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """Raise a UserError naming the first key of a run's config that is deleted, unknown, of the wrong type, or
    out of range; `overrides` are the command line's."""
    check_kept(overrides)
    hydra = _hydra_node(cfg)
    if hydra is not None:
        check_run_mode(hydra)
        check_names(cfg, hydra.runtime.choices)
    check_schema(cfg)
    check_finite(cfg)
    check_ranges(cfg, RULES)


def _hydra_node(cfg: DictConfig) -> DictConfig | None:
    """Hydra's part of the config: in `cfg` when a multirun checks its jobs, else the running job's; None without."""
    if "hydra" in cfg:
        return cfg.hydra
    return HydraConfig.get() if HydraConfig.initialized() else None


def check_run_mode(hydra: DictConfig) -> None:
    """A sweep preset and a launcher act only in a multirun: without `-m` Hydra would drop them and train one run."""
    if hydra.mode != RunMode.RUN:
        return
    for group, plain in MULTIRUN_ONLY.items():
        chosen = hydra.runtime.choices.get(group)
        if chosen != plain:
            raise UserError(
                f"{group}={chosen} acts only in a multirun: add -m (python train.py -m {group}={chosen} ...)"
            )


def check_names(cfg: DictConfig, choices: Mapping[str, str | None]) -> None:
    """A group's `name` must be the option chosen for the group (each file's `name` is its own): `optimizer.name=sam`
    under optimizer=lesam would build SAM from LE-SAM's keys, with a radius no config holds."""
    for group, chosen in choices.items():
        name = OmegaConf.select(cfg, f"{group}.name", default=None) if group in cfg else None
        if chosen is not None and name is not None and name != chosen:
            raise UserError(
                f"{group}.name={name} disagrees with {group}={chosen}; "
                f"choose {group}={name} instead of setting {group}.name"
            )


def check_kept(overrides: Sequence[str]) -> None:
    """Refuse `~key`: the run reads every key its config files define, so a deleted one would leave the
    run on a default no config states (or fail later); null is how a file marks a key as off."""
    for override in overrides:
        key = override[1:].partition("=")[0]
        if override.startswith("~") and not key.startswith("hydra."):
            raise UserError(f"~{key}: the run needs {key}; set {key}=<value> instead of deleting it")


def check_finite(cfg: DictConfig) -> None:
    """Refuse inf and nan anywhere in the config: no setting means them, and a run would train on them to a
    diverged end (`optimizer.lr=inf`) or pass a range check it should fail (`optimizer.rho=inf` > 0)."""
    for group in cfg:
        if group == "hydra":
            continue
        node = cfg[group]
        node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        for key, value in _leaves(node, str(group)):
            numbers = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                raise UserError(f"{key}={value!r} is not a finite number; give it a finite value")


def check_ranges(cfg: DictConfig, rules: Rules) -> None:
    """Raise a UserError naming the first key whose value breaks its rule."""
    for key, (test, requirement, *hint) in rules.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        try:
            ok = bool(test(value))
        except TypeError:
            ok = False
        if not ok:
            advice = f"; {hint[0]}" if hint else ""
            raise UserError(f"{key}={value!r} {requirement}{advice}")
    check_micro_batches(cfg)
    if "model" in cfg and (problem := config_problem(cfg.model)):
        raise UserError(problem)


def check_micro_batches(cfg: DictConfig) -> None:
    """Each process's share of the batch must hold at least one sample per micro-batch."""
    steps = OmegaConf.select(cfg, "trainer.accumulation_steps", default=1)
    share = OmegaConf.select(cfg, "trainer.batch_size", default=steps) // distributed.world_size()
    if steps > share:
        raise UserError(
            f"trainer.accumulation_steps={steps} is more micro-batches than the {share} samples each process "
            f"gets of trainer.batch_size; use at most {share}, or a larger batch"
        )


def _kind(value: Any) -> str | None:
    """The type name the schema compares; None for null, `???` and interpolations (no type to hold to)."""
    if value is None or (isinstance(value, str) and (value == "???" or "${" in value)):
        return None
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", list | tuple)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf under a dict; an empty dict is a leaf (free-form)."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}")
    else:
        yield prefix, node


@functools.cache
def group_schema(group: str) -> dict[str, set[str]]:
    """Every key the files of configs/<group>/ define, with the kinds of their values."""
    schema: dict[str, set[str]] = {}
    for path in sorted((CONFIGS / group).rglob("*.yaml")):
        node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        node.pop("defaults", None)
        for key, value in _leaves(node, group):
            kinds = schema.setdefault(key, set())
            kinds.update({"dict"} if value == {} else {_kind(value)} - {None}, ALSO.get(key, set()))
    return schema


def check_schema(cfg: DictConfig) -> None:
    """Each key of a group node must be one its group's files define, holding a value of their type."""
    for group in cfg:
        if group == "hydra" or not isinstance(cfg[group], DictConfig) or not (CONFIGS / group).is_dir():
            continue
        schema = group_schema(str(group))
        for key, value in _leaves(OmegaConf.to_container(cfg[group], resolve=True), str(group)):
            parents = [key.rsplit(".", n)[0] for n in range(1, key.count("."))]
            if any("dict" in schema.get(parent, ()) for parent in parents):
                continue  # inside a free-form dict
            if key not in schema:
                raise UserError(
                    f"unknown key '{key}': no file of configs/{group}/ defines it; "
                    "check its spelling (`python train.py --cfg job` lists the keys)"
                )
            kinds, kind = schema[key], _kind(value)
            if kind is None or not kinds or kind in kinds or (kind == "int" and "float" in kinds):
                continue
            expected = " or ".join(KINDS.get(k, k) for k in sorted(kinds))
            quote = f" (quote it: {key}='{value}')" if kinds == {"str"} else ""
            raise UserError(f"{key}={value!r} must be {expected}, as in configs/{group}/{quote}")
