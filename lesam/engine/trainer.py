"""The training loop: everything a run holds in memory, and one epoch of training or testing."""

from __future__ import annotations

import random
import time

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lesam.analysis.batches import Batches, fixed_batches, full_fp32, unaugmented_split
from lesam.analysis.lpf import lpf_record
from lesam.data import build_data
from lesam.engine.closure import BatchClosure
from lesam.engine.epoch_stats import EpochStats
from lesam.engine.evaluation import evaluate
from lesam.engine.precision import autocast, resolve_device, resolve_precision
from lesam.engine.rho_trace import RhoTrace
from lesam.models import build_model
from lesam.optim import LossScaler, StepSchedule, build_optimizer


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffling and augmentation: a resumed run repeats it exactly."""
    return seed * 1_000_003 + epoch


class Trainer:
    """Builds data, model and optimizer from the config, then trains and tests epoch by epoch."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg, t = cfg, cfg.trainer
        torch.manual_seed(cfg.seed)
        self.device = resolve_device(t.device)
        self.precision = resolve_precision(t.precision, self.device)
        self.autocast = autocast(self.precision, self.device)
        data = build_data(cfg.dataset)
        self.model = build_model(cfg.model, data.num_classes, data.channels, data.image_size).to(self.device)
        if t.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if t.compile else self.model
        self.optimizer = build_optimizer(cfg.optimizer, self.model)
        if self.precision == "fp16":
            self.optimizer.loss_scaler = LossScaler(self.device)
        self.generator = torch.Generator()
        self.train_loader = self._loader(data.train, t.batch_size, shuffle=True)
        self.test_loader = self._loader(data.test, t.eval_batch_size, shuffle=False)
        self.steps_per_epoch = len(self.train_loader)
        self.schedule = StepSchedule(cfg.schedule, cfg.optimizer, t.epochs, self.steps_per_epoch)
        self.epoch, self.step = 0, 0  # epochs finished, optimizer steps taken
        self.lpf_batches: Batches | None = None  # built on the first LPF measurement

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.cfg.trainer.workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=self.generator if shuffle else None,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0 and self.cfg.trainer.persistent_workers,
        )

    @property
    def done(self) -> bool:
        """Whether the run has trained all its epochs or reached `max_steps`."""
        max_steps = self.cfg.trainer.max_steps
        return self.epoch >= self.cfg.trainer.epochs or (max_steps is not None and self.step >= max_steps)

    def train_epoch(self) -> dict:
        """Train one epoch; returns its loss, accuracy, radius statistics, speed and seconds."""
        t, seed = self.cfg.trainer, epoch_seed(self.cfg.seed, self.epoch)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.generator.manual_seed(seed)
        self.model.train()
        stats = EpochStats(self.device)
        trace = RhoTrace(t.rho_every)
        start = time.perf_counter()
        progress = None if t.progress else True  # tqdm's None: shown on a terminal only
        batches = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}", leave=False, disable=progress)
        for inputs, labels in batches:
            if t.max_steps is not None and self.step >= t.max_steps:
                break
            inputs, labels = self._to_device(inputs, labels)
            self.schedule.apply(self.optimizer, self.step)
            closure = BatchClosure(
                self.forward,
                inputs,
                labels,
                self.autocast,
                self.optimizer.loss_scaler,
                freeze_bn=t.bn_second_pass == "freeze",
                label_smoothing=t.label_smoothing,
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.optimizer.step(closure)
            stats.add_batch(loss, closure.logits, labels)
            if self.optimizer.perturbing:
                stats.add_rho(self.optimizer.last_rho)
                trace.add(self.step, self.optimizer.last_rho)
            self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self.epoch += 1
        record = stats.read("train")
        skipped = self.optimizer.skipped_steps
        return record | {
            "lr": self.optimizer.param_groups[0]["initial_lr"] * self.schedule.lr_factor(self.step),
            "budget_factor": self.schedule.budget_factor(self.step),
            "skipped_steps": int(skipped.item()) if skipped is not None else 0,
            "images_per_s": stats.samples / seconds,
            "train_seconds": seconds,
            "rho_trace": trace.read(),
        }

    def evaluate(self) -> dict:
        """Test loss and accuracy (in percent) of the current weights."""
        return evaluate(self.forward, self.test_loader, self.device, self.autocast, self.cfg.trainer.channels_last)

    def lpf(self) -> dict:
        """LPF flatness of the current weights over fixed, unaugmented training batches (`trainer.lpf`)."""
        t = self.cfg.trainer
        if self.lpf_batches is None:
            train = unaugmented_split(self.cfg.dataset, "train")
            self.lpf_batches = fixed_batches(train, t.eval_batch_size, t.lpf.batches, self.cfg.seed, self.device)
        # its own generator: the noise neither draws from nor depends on the training's random state
        generator = torch.Generator(self.device).manual_seed(epoch_seed(self.cfg.seed, self.epoch))
        with full_fp32():
            return lpf_record(self.model, self.lpf_batches, t.lpf.sigma, t.lpf.samples, generator)

    def _to_device(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = inputs.to(self.device, non_blocking=True)
        if self.cfg.trainer.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, labels.to(self.device, non_blocking=True)

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly."""
        scaler = self.optimizer.loss_scaler
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "epoch": self.epoch,
            "step": self.step,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`'s output."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] is not None and self.optimizer.loss_scaler is not None:
            self.optimizer.loss_scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = state["epoch"], state["step"]
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
