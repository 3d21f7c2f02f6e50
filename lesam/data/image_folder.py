"""ImageNet-1K from its standard class-folder layout: <root>/train/<class>/<image>, <root>/val/<class>/<image>.

Images are decoded by PIL in the loader's worker processes; the trainer's loader pins memory and
can keep its workers alive between epochs (trainer.workers, trainer.persistent_workers).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from torch.utils.data import Dataset

from lesam.core.errors import UserError
from lesam.data.datasets import DataSplits

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
LAYOUT = "train/<class>/<image> and val/<class>/<image>"
SOURCE = (
    "get ImageNet-1K (ILSVRC2012) from image-net.org and sort its val images into class folders, as the PyTorch "
    "ImageNet example does: run https://raw.githubusercontent.com/soumith/imagenetloader.torch/master/valprep.sh "
    "inside val/"
)


def image_folder(path: Path, transform, what: str, layout: str, source: str) -> Dataset:
    """torchvision's ImageFolder over `path`, or one line saying which folder is missing or empty and what to get."""
    from torchvision.datasets import ImageFolder

    if not path.is_dir():
        raise UserError(
            f"{what}: no folder '{path.resolve()}'; set dataset.root to the folder that holds {layout}; {source}"
        )
    try:
        return ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, OSError) as error:
        raise UserError(f"{what}: no images in class folders under '{path.resolve()}' ({error}); {source}") from error


def imagenet_transforms(image_size: int, resize_size: int, augment: str):
    """Train: RandomResizedCrop + flip (or nothing but the resize); test: resize the short side, centre crop."""
    from torchvision import transforms

    to_tensor = [transforms.ToTensor(), transforms.Normalize(*IMAGENET_STATS)]
    test = [transforms.Resize(resize_size), transforms.CenterCrop(image_size)]
    if augment == "basic":
        train = [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
    elif augment == "none":
        train = test
    else:
        raise UserError(f"unknown dataset.augment '{augment}' for imagenet; choose one of: basic, none")
    return transforms.Compose(train + to_tensor), transforms.Compose(test + to_tensor)


def imagenet(cfg: DictConfig) -> DataSplits:
    """The train and val class folders under `cfg.root`; the classes are the train folder's subfolders."""
    root = Path(cfg.root)
    train_transform, test_transform = imagenet_transforms(cfg.image_size, cfg.resize_size, cfg.augment)
    train = image_folder(root / "train", train_transform, "imagenet", LAYOUT, SOURCE)
    test = image_folder(root / "val", test_transform, "imagenet", LAYOUT, SOURCE)
    if train.classes != test.classes:
        raise UserError(f"imagenet: the class folders of '{root / 'train'}' and '{root / 'val'}' differ")
    return DataSplits(train, test, len(train.classes), 3, cfg.image_size, *IMAGENET_STATS)
