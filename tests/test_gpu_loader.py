"""The GPU loader's augmentation has the torchvision pipeline's distribution (checked on CPU tensors)."""

import math

import pytest
import torch
from torchvision.transforms import functional as F

from lesam.data.gpu_loader import AUGMENTATIONS, GpuLoader, cutout

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CPU = torch.device("cpu")


def torchvision_candidates(image: torch.Tensor) -> torch.Tensor:
    """Every output RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize can give."""
    padded = F.pad(image, [4, 4, 4, 4])
    out = []
    for flip in (False, True):
        for i in range(9):
            for j in range(9):
                crop = F.crop(padded, i, j, 32, 32)
                crop = F.hflip(crop) if flip else crop
                out.append(F.normalize(crop.float() / 255, MEAN, STD))
    return torch.stack(out)


def test_every_output_is_a_torchvision_output_and_all_are_equally_likely():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    candidates = torchvision_candidates(image).flatten(1)
    draws = 162 * 60
    images = image.expand(draws, -1, -1, -1)
    loader = GpuLoader(images, torch.zeros(draws), MEAN, STD, 1024, CPU, True, AUGMENTATIONS["basic"], seed=1)
    counts = torch.zeros(len(candidates))
    for batch, _ in loader:
        distance = torch.cdist(batch.flatten(1), candidates, compute_mode="donot_use_mm_for_euclid_dist")
        assert distance.min(dim=1).values.max() < 1e-4  # each sample is exactly one candidate
        counts += torch.bincount(distance.argmin(dim=1), minlength=len(candidates))
    expected = draws / len(candidates)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    dof = len(candidates) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), chi2  # far inside the 1e-6 tail of chi-square(161)


def test_cutout_zeroes_the_square_the_per_image_transform_would():
    torch.manual_seed(2)
    batch = torch.randn(64, 3, 32, 32)
    centres = torch.randint(32, (64, 2))
    got = cutout(batch, 16, centres)
    for image, result, (y, x) in zip(batch, got, centres.tolist(), strict=True):
        expected = image.clone()
        expected[..., max(y - 8, 0) : y + 8, max(x - 8, 0) : x + 8] = 0  # lesam.data.cutout.Cutout(16) at (y, x)
        assert torch.equal(result, expected)


def test_order_is_a_permutation_and_an_epoch_resumes_where_it_stopped():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 4, 4).contiguous()
    loader = GpuLoader(images, torch.arange(10), (0.0,), (1 / 255,), 4, CPU, shuffle=True, seed=3)
    loader.set_epoch(5)
    whole = [(x, y) for x, y in loader]
    order = torch.cat([y for _, y in whole])
    assert sorted(order.tolist()) == list(range(10)) and len(loader) == 3
    loader.set_epoch(5, skip_batches=1)
    rest = [(x, y) for x, y in loader]
    assert len(rest) == 2 and all(
        torch.equal(a[1], b[1]) and torch.equal(a[0], b[0]) for a, b in zip(whole[1:], rest, strict=False)
    )
    for x, y in whole:  # images travel with their labels
        assert torch.equal(x[:, 0, 0, 0], y.float())
    loader.set_epoch(6)
    assert not torch.equal(order, torch.cat([y for _, y in loader]))


@pytest.mark.parametrize("images,sizes", [(9, [4, 4]), (10, [4, 4, 2]), (8, [4, 4])])
def test_a_training_loader_leaves_out_a_last_batch_of_one_image_and_a_test_loader_keeps_it(images, sizes):
    pixels = torch.zeros(images, 1, 4, 4, dtype=torch.uint8)
    train = GpuLoader(pixels, torch.arange(images), (0.0,), (1.0,), 4, CPU, shuffle=True, seed=3)
    labels = [y for _, y in train]
    assert [len(y) for y in labels] == sizes == [len(y) for _, y in train] and len(train) == len(sizes)
    assert len(set(torch.cat(labels).tolist())) == sum(sizes)
    test = GpuLoader(pixels, torch.arange(images), (0.0,), (1.0,), 4, CPU)
    assert torch.equal(torch.cat([y for _, y in test]), torch.arange(images))
