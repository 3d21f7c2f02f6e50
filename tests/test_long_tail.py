"""CIFAR-100-LT: the exponential profile of Cui et al. 2019, a fixed split, a balanced test set, and
many/medium/few-shot accuracy."""

import math

import numpy as np
import pytest
import torchvision
from PIL import Image

from conftest import compose_config
from lesam.data import build_data
from lesam.data.long_tail import long_tail_counts, long_tail_indices
from lesam.engine.evaluation import shot_groups, shot_record


class FakeCIFAR100:
    """torchvision's CIFAR100 interface over random images: 500 training and 100 test images per class."""

    def __init__(self, root, train, download, transform):
        per_class = 500 if train else 100
        self.targets = [c for _ in range(per_class) for c in range(100)]
        self.data = np.random.default_rng(int(train)).integers(0, 256, (len(self.targets), 32, 32, 3), dtype=np.uint8)
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


@pytest.fixture
def fake_cifar100(monkeypatch):
    monkeypatch.setattr(torchvision.datasets, "CIFAR100", FakeCIFAR100)


@pytest.mark.parametrize("imbalance_factor,total,tail", [(100, 10847, 5), (50, 12608, 10)])
def test_counts_follow_the_exponential_profile(imbalance_factor, total, tail):
    counts = long_tail_counts(100, 500, imbalance_factor)
    assert counts == [math.floor(500 * (1 / imbalance_factor) ** (c / 99)) for c in range(100)]
    assert (counts[0], counts[-1], sum(counts)) == (500, tail, total)  # the sizes the literature reports
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))


@pytest.mark.parametrize("imbalance_factor", [100, 50])
def test_the_built_split_has_those_counts_and_a_balanced_test_set(fake_cifar100, imbalance_factor):
    cfg = compose_config(["dataset=cifar100_lt", f"dataset.imbalance_factor={imbalance_factor}"])
    data = build_data(cfg.dataset)
    counts = np.bincount(data.train.targets, minlength=100).tolist()
    assert counts == long_tail_counts(100, 500, imbalance_factor) == data.class_counts
    assert len(data.train.data) == len(data.train.targets)
    assert np.bincount(data.test.targets, minlength=100).tolist() == [100] * 100
    assert data.train[0][0].shape == (3, 32, 32)


def test_the_split_is_fixed_by_its_seed():
    labels = [c for _ in range(500) for c in range(10)]
    counts = long_tail_counts(10, 500, 100)
    first, again = long_tail_indices(labels, counts, seed=0), long_tail_indices(labels, counts, seed=0)
    other = long_tail_indices(labels, counts, seed=1)
    assert first == again and first != other
    assert np.bincount(np.asarray(labels)[first]).tolist() == counts


@pytest.mark.parametrize(
    "factor,few_shot_max,sizes",
    [
        (100, 20, [35, 34, 31]),  # GLMC's evaluation: few-shot is <= 20 images (class 69 has exactly 20)
        (100, 19, [35, 35, 30]),  # Liu et al. 2019's split: few-shot is < 20
        (50, 20, [41, 40, 19]),  # GLMC at IF 50 (class 81 has exactly 20)
        (50, 19, [41, 41, 18]),
    ],
)
def test_shot_groups_follow_the_training_counts(factor, few_shot_max, sizes):
    counts = long_tail_counts(100, 500, factor)
    groups = shot_groups(counts, few_shot_max)
    assert [sum(groups[g]) for g in ("many", "medium", "few")] == sizes
    many, medium, few = sizes
    class_acc = [90.0] * many + [50.0] * medium + [10.0] * (few - 1) + [None]
    record = shot_record({"test_acc": 50.0, "class_acc": class_acc}, counts, few_shot_max)
    assert record == {"test_acc": 50.0, "shot_acc": {"many": 90.0, "medium": 50.0, "few": 10.0}}


def test_glmc_counts_few_shot_classes_as_its_evaluation_does_by_default():
    assert compose_config(["experiment=cifar100_lt"]).dataset.few_shot_max == 20


def test_a_bad_imbalance_factor_is_a_user_error(fake_cifar100):
    from lesam.core.errors import UserError

    cfg = compose_config(["dataset=cifar100_lt", "dataset.imbalance_factor=0.5"])
    with pytest.raises(UserError, match="imbalance_factor"):
        build_data(cfg.dataset)
