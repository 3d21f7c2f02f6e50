"""Images per second of the ImageNet training pipeline (PIL decode, RandomResizedCrop, flip) per worker count.

Measures the data set's own loader with the trainer's settings, on a real ImageNet train folder or on
synthetic JPEGs of ImageNet's typical size written to a temporary folder:
    python scripts/bench_loader.py --workers 0 2 4 8
    python scripts/bench_loader.py --root /path/to/imagenet --workers 8 16
A GPU that trains ResNet-50 at N images/s needs a worker count whose rate here is above N.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from lesam.data.image_folder import imagenet
from lesam.engine.cli import quiet_when_the_reader_leaves


def write_jpegs(root: Path, images: int, classes: int = 10) -> None:
    """`images` 500x375 JPEGs (quality 90) in train/ and val/ class folders: smooth random content,
    which compresses about as photos do (pure noise would be several times larger and slower to decode)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(images if split == "train" else classes):
            folder = root / split / f"n{i % classes:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            coarse = Image.fromarray(rng.integers(0, 256, (38, 50, 3), dtype=np.uint8)).resize(
                (500, 375), Image.BICUBIC
            )
            grain = rng.normal(0, 8, (375, 500, 3))
            pixels = np.clip(np.asarray(coarse, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.JPEG", quality=90)


def images_per_second(root: Path, workers: int, batch_size: int, batches: int) -> float:
    """Throughput of the train loader after one warm-up batch."""
    cfg = OmegaConf.create({"root": str(root), "image_size": 224, "resize_size": 256, "augment": "basic"})
    loader = torch.utils.data.DataLoader(
        imagenet(cfg).train, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    iterator = iter(loader)
    next(iterator)
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        seen += len(next(iterator)[1])
    return seen / (time.perf_counter() - start)


@quiet_when_the_reader_leaves
def main() -> None:
    """Print images/s for each worker count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="an ImageNet folder (train/<class>/...); default: synthetic JPEGs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = Path(tmp)
            write_jpegs(root, args.batch_size * (args.batches + 2))
        for workers in args.workers:
            rate = images_per_second(root, workers, args.batch_size, args.batches)
            print(f"workers {workers:3d}: {rate:8.1f} images/s")


if __name__ == "__main__":
    main()
