"""Run ids stay the same across releases: table cells keep their pinned ids, keys added later are left out
at their neutral value, operational keys stay out, and a weights file counts by its content."""

import os

import pytest
from omegaconf import OmegaConf

from lesam.core.run_id import identity_digest, run_id

# ids as the release that pinned them computed them; `make tableN` finds a finished run by them
PINNED = {
    "experiment=cifar100_resnet18 optimizer=lesam seed=0": "cifar100-resnet18-lesam-s0-60c9f079",
    "experiment=cifar10_wrn28_10 optimizer=sam seed=1": "cifar10-wrn28_10-sam-s1-df555781",
    "experiment=cifar100_pyramidnet110 optimizer=lesam_plus seed=2": "cifar100-pyramidnet110-lesam_plus-s2-80583085",
    "experiment=cifar100_lt dataset.imbalance_factor=100 method=glmc optimizer=lesam seed=0": (
        "cifar100_lt-resnet32-lesam-s0-13a49af9"
    ),
    # their weights files are not here: a missing file enters by its path, as every id did before digests
    "experiment=vit_b16_cifar100 optimizer=lesam seed=0": "cifar100-vit_b16-lesam-s0-3c57ca17",
    "experiment=pacs method=ermpp dataset.source_domain=photo optimizer=lesam seed=0": (
        "pacs-resnet18_imagenet-lesam-s0-3348087d"
    ),
}
ON_PURPOSE = (
    "this table cell's run id changed, so `make tableN` would train its finished runs again. If a config key "
    "was added, put it with its neutral value (the one under which runs without it compute the same) in "
    "NEUTRAL and SINCE_PINNED of lesam/core/run_id.py. If the cell now computes something else on purpose, "
    "pin its new id here and say so in the commit message (its old runs are then trained again)."
)
WRN = ["experiment=cifar100_wrn28_10", "optimizer=lesam"]


@pytest.mark.parametrize("overrides", PINNED)
def test_table_cells_keep_their_pinned_ids(compose_cfg, overrides):
    assert run_id(compose_cfg(overrides.split())) == PINNED[overrides], ON_PURPOSE


@pytest.mark.parametrize(
    "overrides, extra",
    [
        (WRN, "recipe_variant=paper"),  # a key added after the pinning, at its neutral value
        (WRN, "trainer.cuda_graph=true"),  # operational: a captured step is bitwise the eager one
        (WRN, "trainer.cuda_graph=auto"),
    ],
)
def test_neutral_and_operational_keys_leave_the_id_alone(compose_cfg, overrides, extra):
    assert run_id(compose_cfg([*overrides, extra])) == run_id(compose_cfg(overrides))


@pytest.mark.parametrize(
    "overrides, key",
    [
        (
            ["experiment=cifar100_resnet18", "optimizer=ssam", "optimizer.normalize_perturbation=true"],
            "optimizer.normalize_perturbation",
        ),
        (["experiment=cifar100_resnet18", "optimizer=lesam_plus"], "optimizer.plus_form"),
    ],
)
def test_a_key_added_since_the_pinning_at_its_neutral_value_is_not_hashed(compose_cfg, overrides, key):
    cfg = compose_cfg(overrides)
    assert run_id(as_written_before(cfg, key)) == run_id(cfg)


@pytest.mark.parametrize("extra", ["recipe_variant=authors", "trainer.accumulation_steps=2", "trainer.loader=gpu"])
def test_a_value_away_from_neutral_is_another_run(compose_cfg, extra):
    assert run_id(compose_cfg([*WRN, extra])) != run_id(compose_cfg(WRN))
    assert identity_digest(compose_cfg([*WRN, extra])) != identity_digest(compose_cfg(WRN))


def as_written_before(cfg, *added):
    """The config `cfg` as a release before `added` keys existed wrote it into a run folder."""
    old = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for dotted in added:
        parent, _, leaf = dotted.rpartition(".")
        del OmegaConf.select(old, parent)[leaf]
    return old


def test_a_config_without_the_keys_added_since_computes_the_same(compose_cfg):
    cfg = compose_cfg([*WRN, "seed=0"])  # the release of 2026-11-28 had no accumulation or normalisation keys
    old = as_written_before(cfg, "trainer.accumulation_steps", "dataset.mean", "dataset.std", "trainer.cuda_graph")
    assert identity_digest(old) == identity_digest(cfg)
    lt = compose_cfg(["experiment=cifar100_lt", "method=glmc", "optimizer=sgd"])
    # few-shot classes were those with fewer than 20 images: 19 is neutral, the recipe's 20 is not
    assert identity_digest(as_written_before(lt, "dataset.few_shot_max")) != identity_digest(lt)
    fewer = compose_cfg(["experiment=cifar100_lt", "method=glmc", "optimizer=sgd", "dataset.few_shot_max=19"])
    assert identity_digest(as_written_before(lt, "dataset.few_shot_max")) == identity_digest(fewer)


def weights_file(path, content: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_a_weights_file_counts_by_its_content_not_its_folder(compose_cfg, tmp_path):
    pacs = ["experiment=pacs", "dataset.source_domain=photo", "optimizer=lesam"]
    here = weights_file(tmp_path / "a" / "resnet18.pth", b"the same weights")
    there = weights_file(tmp_path / "b" / "copy.pth", b"the same weights")
    other = weights_file(tmp_path / "c" / "resnet18.pth", b"other weights!!!")
    ids = {p: run_id(compose_cfg([*pacs, f"model.weights={p}"])) for p in (here, there, other)}
    assert ids[here] == ids[there] != ids[other]
    # pinned: the id of these bytes, wherever they lie
    assert ids[here] == "pacs-resnet18_imagenet-lesam-s0-f17a6dc1", ON_PURPOSE
    # a file changed in place (same size, new time) is read again, not taken from the cache
    before = os.stat(here)
    here.write_bytes(b"other weights!!!")
    os.utime(here, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert run_id(compose_cfg([*pacs, f"model.weights={here}"])) == ids[other]


def test_a_missing_weights_file_still_names_the_run_by_its_path(compose_cfg, tmp_path):
    pacs = ["experiment=pacs", "dataset.source_domain=photo", "optimizer=lesam"]
    missing = [run_id(compose_cfg([*pacs, f"model.weights={tmp_path / name}"])) for name in ("a.pth", "b.pth")]
    assert missing[0] != missing[1]  # a dry run before the download names each run, each by its path
