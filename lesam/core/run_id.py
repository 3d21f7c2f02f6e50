"""A run folder's name: readable choices plus a hash of every value that changes the result.

The names stay the same across releases, so that an upgrade finds the runs trained before it:
- keys that say where or how fast a run goes, not what it computes, are left out (OPERATIONAL);
- a key added after runs were trained without it has a neutral value, the one under which those runs
  compute the same (NEUTRAL): `identity` leaves every such key out at that value, so that the configs of
  any two releases compare equal when their runs compute the same (the planner adopts a folder so);
- the name's hash is pinned (tests/test_run_ids.py): it covers what it covered when it was pinned, and
  a key added since (SINCE_PINNED) stays out of it at its neutral value;
- a pretrained weights file counts by its content (its SHA-256), not by where it lies.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# keys that change where or how fast a run goes, not what it computes
OPERATIONAL = {
    "output_root",
    "logger",
    "dataset.root",
    "dataset.download",
    "dataset.package_root",
    "trainer.device",
    "trainer.workers",
    "trainer.progress",
    "trainer.eval_batch_size",
    "trainer.nonfinite_window",
    "trainer.cuda_graph",  # a captured step is bitwise the eager one on the GPU
}
# operational keys that the pinned hash covers, at the value every run then had: hashed at it, whatever the run's
HASHED_AS = {"trainer.cuda_graph": False}

# key -> neutral value: the value under which runs trained before the key existed compute the same
# (each key's first release: git log -p configs/)
NEUTRAL: dict[str, Any] = {
    "trainer.rho_every": 0,  # with rho.jsonl: none was written before
    "trainer.lpf": {"every": 0, "sigma": 0.01, "samples": 10, "batches": 10},  # with LPF during training: off
    "trainer.steps": None,  # with step-counted recipes: a run lasts trainer.epochs
    "method": {"name": "erm"},  # with training methods: plain ERM
    "optimizer.base": "sgd",  # with ERM++'s Adam base: SGD
    "optimizer.perturb_sync": "global",  # with DDP: one gradient for the whole batch, as one process has
    "dataset.imbalance_factor": None,  # synthetic data's long tail and shifted domains: balanced, no domains
    "dataset.source_domain": None,
    "trainer.loader": "torch",  # with the GPU loader: the DataLoader
    "trainer.accumulation_steps": 1,  # with gradient accumulation: one pass per batch
    "dataset.mean": None,  # with per-config normalisation: each data set's own statistics
    "dataset.std": None,
    "dataset.few_shot_max": 19,  # with GLMC's split: few-shot classes had fewer than 20 training images
    "recipe_variant": "paper",  # the paper's recipes
    "optimizer.normalize_perturbation": True,  # SSAM: e = rho * g / ||g||, as before the key
    "optimizer.plus_form": "paper",  # LE-SAM+: (1 + alpha) g_adv - alpha g, as before the key
}
# neutral keys added after the ids were pinned: left out of the hash at their neutral value
SINCE_PINNED = ("recipe_variant", "optimizer.normalize_perturbation", "optimizer.plus_form")

# keys that name a pretrained weights file: the file's content is the run's, wherever it lies
WEIGHTS_FILES = ("model.weights",)


def semantic_config(cfg: DictConfig) -> dict:
    """The resolved job config without Hydra's node and without the operational keys."""
    job = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    for dotted in OPERATIONAL:
        _pop(job, dotted)
    return job


def identity(cfg: DictConfig) -> dict:
    """What the run computes: its semantic config, weights files by content, every neutral key at its neutral
    value left out. Two runs compute the same exactly when their identities are equal, whichever release
    wrote their configs."""
    job = _by_content(semantic_config(cfg))
    for dotted, neutral in NEUTRAL.items():
        _pop(job, dotted, only=neutral)
    return job


def identity_digest(cfg: DictConfig) -> str:
    """The SHA-256 of `identity(cfg)`: equal for two configs exactly when their runs compute the same."""
    return _digest(identity(cfg))


def run_id(cfg: DictConfig) -> str:
    """E.g. 'cifar100-wrn28_10-lesam-s0-3f2a9c1e': the same config always gives the same name."""
    job = _by_content(semantic_config(cfg))
    for dotted in SINCE_PINNED:
        _pop(job, dotted, only=NEUTRAL[dotted])
    for dotted, value in HASHED_AS.items():
        _put(job, dotted, value)
    names = (job["dataset"]["name"], job["model"]["name"], job["optimizer"]["name"])
    return f"{'-'.join(names)}-s{job['seed']}-{_digest(job)[:8]}"


def weights_digest(path: str) -> str | None:
    """'sha256:<hex>' of the file at `path`, or None when there is none (computed once per version of a file)."""
    file = Path(path)
    try:
        stat = file.stat()
    except OSError:
        return None
    return _sha256(str(file.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.cache
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    """The file's digest; the cache key holds its modification time and size, so a changed file is read again."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _by_content(job: dict) -> dict:
    """`job` with each weights file that exists named by its digest.

    A missing file keeps its path: a dry run before the download still names the run, and train.py stops,
    naming the file, before it writes a folder under that name.
    """
    job = copy.deepcopy(job)
    for dotted in WEIGHTS_FILES:
        node, leaf = _parent(job, dotted)
        if node is not None and isinstance(node.get(leaf), str):
            node[leaf] = weights_digest(node[leaf]) or node[leaf]
    return job


def _digest(job: dict) -> str:
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()


def _parent(job: dict, dotted: str) -> tuple[dict | None, str]:
    """The dict that holds the leaf of `dotted` (None if a node on the way is missing), and the leaf's name."""
    *parents, leaf = dotted.split(".")
    node: Any = job
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), leaf


_ANY = object()


def _pop(job: dict, dotted: str, only: Any = _ANY) -> None:
    """Remove `dotted` from `job` (if it holds `only`, when given)."""
    node, leaf = _parent(job, dotted)
    if node is not None and leaf in node and (only is _ANY or _same(node[leaf], only)):
        del node[leaf]


def _same(a: Any, b: Any) -> bool:
    """Equal as the hash sees them (1 is not true, 1 is not 1.0)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _put(job: dict, dotted: str, value: Any) -> None:
    """Set `dotted` to `value` where its parent node is in `job`."""
    node, leaf = _parent(job, dotted)
    if node is not None:
        node[leaf] = value
