"""Single-source domain generalisation on PACS and VLCS in DomainBed's layout: <root>/<domain>/<class>/<image>.

A run trains on `dataset.source_domain` and tests on every other domain of `dataset.domains`, each
on its own; the run's test accuracy is the mean over those target domains.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from torch.utils.data import ConcatDataset

from lesam.core.errors import UserError
from lesam.data.datasets import DataSplits
from lesam.data.image_folder import IMAGENET_STATS, image_folder


def domain_transforms(image_size: int, augment: str):
    """DomainBed's (and ERM++'s) training augmentation, or none; test images are resized to a square."""
    from torchvision import transforms

    to_tensor = [transforms.ToTensor(), transforms.Normalize(*IMAGENET_STATS)]
    test = [transforms.Resize((image_size, image_size))]
    if augment == "domainbed":
        train = [
            transforms.RandomResizedCrop(image_size, scale=(0.7, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(0.3, 0.3, 0.3, 0.3),
            transforms.RandomGrayscale(),
        ]
    elif augment == "none":
        train = test
    else:
        raise UserError(f"unknown dataset.augment '{augment}'; choose one of: domainbed, none")
    return transforms.Compose(train + to_tensor), transforms.Compose(test + to_tensor)


def domain_splits(cfg: DictConfig) -> DataSplits:
    """Train on the source domain's images; test on each other domain (all of its images)."""
    domains, source = list(cfg.domains), cfg.source_domain
    if source not in domains:
        raise UserError(
            f"dataset.source_domain='{source}' is not a {cfg.name} domain; choose one of: {', '.join(domains)}"
        )
    root = Path(cfg.root)
    train_transform, test_transform = domain_transforms(cfg.image_size, cfg.augment)
    layout = "<domain>/<class>/<image> (DomainBed's layout)"
    how = f"DomainBed's `python -m domainbed.scripts.download --data_dir <dir>` writes <dir>/{cfg.name.upper()}"
    train = image_folder(root / source, train_transform, cfg.name, layout, how)
    targets = {d: image_folder(root / d, test_transform, cfg.name, layout, how) for d in domains if d != source}
    for domain, data in targets.items():
        if data.classes != train.classes:
            raise UserError(f"{cfg.name}: the class folders of domain '{domain}' differ from those of '{source}'")
    test = ConcatDataset(list(targets.values()))
    return DataSplits(train, test, len(train.classes), 3, cfg.image_size, *IMAGENET_STATS, test_domains=targets)
