"""The data sets a run can name: CIFAR-10/100, Fashion-MNIST and synthetic images here; the rest in their modules."""

from __future__ import annotations

import importlib
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset

from lesam.core.errors import UserError
from lesam.data.cutout import Cutout
from lesam.data.idx import read_idx
from lesam.data.tensor_dataset import ImageTensorDataset

CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
# basic: crop (pad 4) + flip; cutout adds Cutout(16) as the ESAM code; reflect pads by reflection (Zhang et al. 2024)
CIFAR_AUGMENTS = ("none", "basic", "cutout", "reflect")
DOWNLOAD_TIMEOUT = 60.0  # seconds a download waits for the server's next bytes (urllib alone would wait for good)
FASHION_STATS = ((0.2860,), (0.3530,))
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass
class DataSplits:
    """A data set's train and test splits and the shape a model must take."""

    train: Dataset
    test: Dataset
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...] | None = None  # the normalisation the splits apply (PGD attacks undo it)
    std: tuple[float, ...] | None = None
    class_counts: list[int] | None = None  # training images per class of a long-tailed set: shot-group accuracy
    test_domains: dict[str, Dataset] | None = None  # each target domain's test set (domain generalisation)


def cifar(cfg: DictConfig) -> DataSplits:
    """CIFAR-10 or -100 through torchvision, with its standard augmentation on the train split."""
    from torchvision import datasets, transforms

    mean, std = CIFAR_STATS[cfg.name]
    if cfg.get("mean") is not None:  # a pretrained backbone's own normalisation
        mean, std = tuple(cfg.mean), tuple(cfg.std)
    if cfg.augment not in CIFAR_AUGMENTS:
        raise UserError(f"unknown dataset.augment '{cfg.augment}'; choose one of: {', '.join(CIFAR_AUGMENTS)}")
    crop_flip = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    reflect = [transforms.RandomCrop(32, padding=4, padding_mode="reflect"), transforms.RandomHorizontalFlip()]
    size = cfg.get("image_size", 32)  # larger for backbones pretrained at another resolution (ViT: 224)
    resize = [] if size == 32 else [transforms.Resize(size)]
    to_tensor = [transforms.ToTensor(), transforms.Normalize(mean, std)] + resize
    train_steps = {
        "none": to_tensor,
        "basic": crop_flip + to_tensor,
        "cutout": crop_flip + to_tensor + [Cutout(16)],
        "reflect": reflect + to_tensor,
    }[cfg.augment]
    cls = datasets.CIFAR10 if cfg.name == "cifar10" else datasets.CIFAR100

    def split(train: bool, steps: list) -> Dataset:
        with torchvision_errors(cfg), checksum_errors(cfg, cls):
            return cls(cfg.root, train=train, download=cfg.download, transform=transforms.Compose(steps))

    return DataSplits(split(True, train_steps), split(False, to_tensor), cfg.num_classes, 3, size, mean, std)


def fashion_mnist(cfg: DictConfig) -> DataSplits:
    """Fashion-MNIST from the Debian package's files where present, else torchvision's copy."""
    package = Path(cfg.package_root) if cfg.get("package_root") else None
    if package is not None and all((package / f).exists() for pair in FASHION_FILES.values() for f in pair):
        arrays = {
            split: tuple(torch.from_numpy(read_idx(package / f).copy()) for f in files)
            for split, files in FASHION_FILES.items()
        }
    else:
        from torchvision import datasets

        with torchvision_errors(cfg):
            arrays = {
                split: (d.data, d.targets)
                for split in FASHION_FILES
                for d in [datasets.FashionMNIST(cfg.root, train=split == "train", download=cfg.download)]
            }
    train, test = (ImageTensorDataset(arrays[s][0].unsqueeze(1), arrays[s][1], *FASHION_STATS) for s in FASHION_FILES)
    return DataSplits(train, test, cfg.num_classes, 1, 28, *FASHION_STATS)


def _imported(module: str, name: str) -> Callable[[DictConfig], DataSplits]:
    """A builder from a module that itself imports this one: looked up when called."""
    return lambda cfg: getattr(importlib.import_module(module), name)(cfg)


DATASETS: dict[str, Callable[[DictConfig], DataSplits]] = {
    "cifar10": cifar,
    "cifar100": cifar,
    "fashion_mnist": fashion_mnist,
    "synthetic": _imported("lesam.data.synthetic", "synthetic"),
    "cifar100_lt": _imported("lesam.data.long_tail", "cifar100_lt"),
    "imagenet": _imported("lesam.data.image_folder", "imagenet"),
    "pacs": _imported("lesam.data.domains", "domain_splits"),
    "vlcs": _imported("lesam.data.domains", "domain_splits"),
}


def build_data(cfg: DictConfig) -> DataSplits:
    """The splits of the data set named by `cfg.name`."""
    if cfg.name not in DATASETS:
        raise UserError(f"unknown dataset '{cfg.name}'; choose one of: {', '.join(DATASETS)}")
    return DATASETS[cfg.name](cfg)


@dataclass(frozen=True)
class Source:
    """Where torchvision reads a data set under dataset.root, which files, and where they come from."""

    folder: str
    files: str
    url: str
    alternative: str = ""  # another way to get it, with its leading '; '; {package_root} is filled in


SOURCES = {
    "cifar10": Source(
        "cifar-10-batches-py",
        "data_batch_1 to data_batch_5, test_batch and batches.meta",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": Source(
        "cifar-100-python", "train, test and meta", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    ),
    "fashion_mnist": Source(
        "FashionMNIST/raw",
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "; or install the Debian package dataset-fashion-mnist, read from dataset.package_root={package_root}",
    ),
}


@contextmanager
def torchvision_errors(cfg: DictConfig) -> Iterator[None]:
    """Turn torchvision's 'not found' and failed downloads into one line that says what to get and where
    it goes; a folder the failed attempt created is removed again."""
    root = Path(cfg.root).resolve()
    new = [folder for folder in (root, *root.parents) if not folder.exists()]
    name = "cifar100" if cfg.name == "cifar100_lt" else cfg.name
    source = SOURCES[name]
    where = f"set dataset.root to the folder that holds {source.folder}/"
    alternative = source.alternative.format(package_root=cfg.get("package_root"))
    try:
        with download_timeout():
            yield
    except (RuntimeError, OSError) as error:
        if new:
            shutil.rmtree(new[-1], ignore_errors=True)
        if cfg.download:
            reason = str(error).strip().splitlines()[-1].strip()
            raise UserError(
                f"could not download {name} from {source.url} ({reason}); put {source.files} into "
                f"'{root / source.folder}' by hand, or {where}{alternative}"
            ) from error
        raise UserError(
            f"{name} not found: '{root / source.folder}' must hold {source.files}; {where}, "
            f"or set dataset.download=true to fetch {source.url}{alternative}"
        ) from error


def failed_checksums(cls: type, folder: Path) -> list[Path]:
    """The files of torchvision's CIFAR class `cls` in `folder` that are there but fail its MD5 check."""
    from torchvision.datasets.utils import check_integrity

    expected = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
    return [folder / f for f, md5 in expected if (folder / f).is_file() and not check_integrity(str(folder / f), md5)]


@contextmanager
def checksum_errors(cfg: DictConfig, cls: type) -> Iterator[None]:
    """Name the file that failed torchvision's MD5 check, which torchvision reports as a data set not found
    or (when it tries to fetch a new copy) as a failed download."""
    try:
        yield
    except (RuntimeError, OSError) as error:
        source = SOURCES[cfg.name]
        failed = failed_checksums(cls, Path(cfg.root).resolve() / source.folder)
        if not failed:
            raise
        others = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        reason = str(error).strip().splitlines()[-1].strip()
        download = f"; the download to replace it failed ({reason})" if cfg.download else ""
        raise UserError(
            f"'{failed[0]}'{others} is not the original {cfg.name} file: it fails torchvision's MD5 checksum"
            f"{download}; delete it, then download {source.url} again (dataset.download=true does it) "
            "or put the original file there"
        ) from error


@contextmanager
def download_timeout() -> Iterator[None]:
    """Give up a download (torchvision's, through urllib) whose server sends nothing for DOWNLOAD_TIMEOUT seconds."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        yield
    except TimeoutError as error:
        raise TimeoutError(f"the server sent nothing for {DOWNLOAD_TIMEOUT:g} s") from error
    finally:
        socket.setdefaulttimeout(previous)
