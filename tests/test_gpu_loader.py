"""The GPU loader's augmentation has the torchvision pipeline's distribution (checked on CPU tensors)."""

import math

import torch
from torchvision.transforms import functional as F

from lesam.data.gpu_loader import GpuLoader, cutout

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


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
    loader = GpuLoader(
        image.expand(draws, -1, -1, -1),
        torch.zeros(draws),
        MEAN,
        STD,
        1024,
        torch.device("cpu"),
        shuffle=True,
        crop_padding=4,
        flip=True,
    )
    loader.generator.manual_seed(1)
    counts = torch.zeros(len(candidates))
    for batch, _ in loader:
        distance = torch.cdist(batch.flatten(1), candidates, compute_mode="donot_use_mm_for_euclid_dist")
        nearest = distance.argmin(dim=1)
        assert distance.min(dim=1).values.max() < 1e-4  # each sample is exactly one candidate
        counts += torch.bincount(nearest, minlength=len(candidates))
    expected = draws / len(candidates)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    dof = len(candidates) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), chi2  # far inside the 1e-6 tail of chi-square(161)


def test_cutout_zeroes_the_square_the_per_image_transform_would():
    torch.manual_seed(2)
    batch = torch.randn(64, 3, 32, 32)
    generator = torch.Generator().manual_seed(3)
    got = cutout(batch, 16, generator)
    generator.manual_seed(3)  # the same centres again, drawn as cutout() draws them
    ys, xs = torch.randint(32, (64, 1, 1), generator=generator), torch.randint(32, (64, 1, 1), generator=generator)
    for image, result, y, x in zip(batch, got, ys.flatten().tolist(), xs.flatten().tolist(), strict=False):
        expected = image.clone()
        expected[..., max(y - 8, 0) : y + 8, max(x - 8, 0) : x + 8] = 0  # Cutout(16) at centre (y, x)
        assert torch.equal(result, expected)


def test_order_is_a_permutation_and_reseeding_repeats_the_epoch():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 4, 4).contiguous()
    loader = GpuLoader(images, torch.arange(10), (0.0,), (1 / 255,), 4, torch.device("cpu"), shuffle=True)
    loader.generator.manual_seed(5)
    first = torch.cat([y for _, y in loader])
    loader.generator.manual_seed(5)
    again = [(x, y) for x, y in loader]
    assert sorted(first.tolist()) == list(range(10)) and len(loader) == 3
    assert torch.equal(first, torch.cat([y for _, y in again]))
    for x, y in again:  # images travel with their labels
        assert torch.equal(x[:, 0, 0, 0], y.float())
