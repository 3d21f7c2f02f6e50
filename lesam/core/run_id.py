"""A run folder's name: readable choices plus a hash of every value that changes the result."""

from __future__ import annotations

import hashlib
import json

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
}
# keys added after runs were named, left out at the value that computes what those runs did, so their names stay
NEUTRAL = {"recipe_variant": "paper", "optimizer.plus_form": "paper", "optimizer.normalize_perturbation": True}


def semantic_config(cfg: DictConfig) -> dict:
    """The resolved job config without Hydra's node and without the operational keys."""
    job = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    for dotted in OPERATIONAL:
        *parents, leaf = dotted.split(".")
        node = job
        for key in parents:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return job


def drop_neutral(job: dict) -> dict:
    """`job` (changed in place) without the NEUTRAL keys that hold their neutral value."""
    for dotted, neutral in NEUTRAL.items():
        *parents, leaf = dotted.split(".")
        node = job
        for key in parents:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and leaf in node and node[leaf] == neutral:
            del node[leaf]
    return job


def run_id(cfg: DictConfig) -> str:
    """E.g. 'cifar100-wrn28_10-lesam-s0-3f2a9c1e': the same config always gives the same name."""
    job = drop_neutral(semantic_config(cfg))
    digest = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:8]
    return f"{job['dataset']['name']}-{job['model']['name']}-{job['optimizer']['name']}-s{job['seed']}-{digest}"
