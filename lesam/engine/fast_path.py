"""The fast path's choices: compiling the model, holding the data on the GPU, capturing the step.

Each option says in one line why it cannot be used when a run asks for it; `trainer.loader=auto`
takes the GPU loader wherever it computes what the torch loader does, and `trainer.cuda_graph=auto`
the captured step wherever it can be taken.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset

from lesam.core.errors import UserError
from lesam.data import DataSplits
from lesam.data.gpu_loader import AUGMENTATIONS, GpuLoader, image_arrays
from lesam.engine import distributed
from lesam.methods import Method
from lesam.optim import SharpnessAware

CUDAGRAPH_COMPILE_MODES = ("reduce-overhead", "max-autotune")  # torch.compile's modes that capture graphs themselves


def compiled(module: nn.Module, mode: bool | str | None) -> nn.Module:
    """`module` under torch.compile (`mode` true: the default mode), or as it is when `mode` is off."""
    if not mode:
        return module
    return torch.compile(module, mode=None if mode is True else mode)


def gpu_loader_obstacle(cfg: DictConfig, data: DataSplits, dataset: Dataset) -> str | None:
    """Why the GPU loader cannot serve this run's training data, or None if it can."""
    augment = cfg.dataset.get("augment", "none")
    if distributed.world_size() > 1:
        return "it serves one process; use trainer.loader=torch with several"
    if dataset is not data.train:
        return f"method={cfg.method.name} changes the training data"
    if augment not in AUGMENTATIONS:
        return f"dataset.augment={augment} has no GPU version; choose one of {', '.join(AUGMENTATIONS)}"
    if data.mean is None or image_arrays(dataset) is None or image_arrays(data.test) is None:
        return f"dataset={cfg.dataset.name} is not held as uint8 image arrays"
    if image_arrays(dataset)[0].shape[-1] != data.image_size:
        return "the images are resized"
    return None


def use_gpu_loader(cfg: DictConfig, device: torch.device, data: DataSplits, dataset: Dataset) -> bool:
    """`trainer.loader`: gpu where asked (or a UserError saying why not); auto on a GPU where possible.

    On the CPU the same loader holds the data in memory and augments batches there (what the tests use).
    """
    choice = cfg.trainer.loader
    if choice == "torch" or (choice == "auto" and device.type != "cuda"):
        return False
    obstacle = gpu_loader_obstacle(cfg, data, dataset)
    if obstacle is not None and choice == "gpu":
        raise UserError(f"trainer.loader=gpu: {obstacle}; or use trainer.loader=torch")
    return obstacle is None


def gpu_loaders(cfg: DictConfig, device: torch.device, data: DataSplits, seed: int) -> tuple[GpuLoader, GpuLoader]:
    """The training loader (shuffled, augmented as dataset.augment says) and the test loader, on `device`."""
    t = cfg.trainer
    train = GpuLoader(
        *image_arrays(data.train), data.mean, data.std, t.batch_size, device,
        shuffle=True, augmentation=AUGMENTATIONS[cfg.dataset.get("augment", "none")], seed=seed,
    )  # fmt: skip
    test = GpuLoader(*image_arrays(data.test), data.mean, data.std, t.eval_batch_size, device)
    return train, test


def capture_obstacle(cfg: DictConfig, device: torch.device, method: Method, optimizer: SharpnessAware) -> str | None:
    """Why a whole step of this run cannot be captured as one CUDA graph, or None if it can."""
    compile_mode = cfg.trainer.compile
    reasons = [
        (device.type != "cuda", "it needs trainer.device=cuda"),
        (distributed.world_size() > 1, "it runs in one process"),
        (not method.capturable, f"method={cfg.method.name} adds work around the step; it needs method=erm"),
        (not all(g.get("fused") for g in optimizer.param_groups), "the base optimizer must be fused"),
        (cfg.trainer.accumulation_steps > 1, "it needs trainer.accumulation_steps=1 (one micro-batch)"),
        (
            isinstance(compile_mode, str) and compile_mode in CUDAGRAPH_COMPILE_MODES,
            f"trainer.compile={compile_mode} captures CUDA graphs of its own; use max-autotune-no-cudagraphs or true",
        ),
    ]
    return next((reason for failed, reason in reasons if failed), None)


def check_capturable(cfg: DictConfig, device: torch.device, method: Method, optimizer: SharpnessAware) -> None:
    """A UserError if a whole step of this run cannot be captured as one CUDA graph."""
    obstacle = capture_obstacle(cfg, device, method, optimizer)
    if obstacle is not None:
        raise UserError(f"trainer.cuda_graph=true: {obstacle}; or set trainer.cuda_graph=false")


def eager_reason(cfg: DictConfig, device: torch.device, method: Method, optimizer: SharpnessAware) -> str | None:
    """Why this run's step runs eagerly (`trainer.cuda_graph`), or None where it is captured as a CUDA graph.

    `auto` captures wherever the captured step computes what the eager one does; `true` insists (a
    UserError saying why not); `false` is eager.
    """
    choice = cfg.trainer.cuda_graph
    if choice is False:
        return "trainer.cuda_graph=false"
    if choice is True:
        check_capturable(cfg, device, method, optimizer)
        return None
    obstacle = capture_obstacle(cfg, device, method, optimizer)
    return None if obstacle is None else f"trainer.cuda_graph=auto: {obstacle}"
