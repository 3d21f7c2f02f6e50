"""The training loop: everything a run holds in memory, and one epoch of training or testing."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lesam.core.errors import UserError
from lesam.data import build_data
from lesam.data.fixed_batches import Batches, fixed_batches, unaugmented_split
from lesam.data.gpu_loader import GpuLoader
from lesam.data.sampling import BatchSeeded, EpochSampler, mixed_seed
from lesam.data.workers import usable_workers
from lesam.engine import distributed
from lesam.engine.cuda_graph import CapturedStep
from lesam.engine.epoch_stats import EpochStats
from lesam.engine.evaluation import domain_record, evaluate, shot_record
from lesam.engine.fast_path import compiled, eager_reason, gpu_loaders, use_gpu_loader
from lesam.engine.guards import StepGuard
from lesam.engine.lpf import lpf_record
from lesam.engine.precision import autocast, full_fp32, resolve_device, resolve_precision
from lesam.engine.preemption import STOP, Interrupted
from lesam.engine.rho_trace import RhoTrace
from lesam.engine.rng import rng_state, set_rng_state
from lesam.methods import Batch, build_method
from lesam.methods.closure import BatchClosure
from lesam.models import build_model
from lesam.optim import LossScaler, SharpnessAware, StepSchedule, build_optimizer
from lesam.optim.schedules import lr_on_device


def endless(batches: Iterable) -> Iterator:
    """The batches of a loader, epoch after epoch."""
    while True:
        yield from batches


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffling and augmentation: a resumed run repeats it exactly."""
    return seed * 1_000_003 + epoch


class Trainer:
    """Builds data, model and optimizer from the config, then trains and tests epoch by epoch."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg, t = cfg, cfg.trainer
        torch.manual_seed(cfg.seed)
        self.device = distributed.setup(resolve_device(t.device))
        self.precision = resolve_precision(t.precision, self.device)
        self.data = data = build_data(cfg.dataset)
        self.method = build_method(cfg, data)
        model = build_model(cfg.model, data.num_classes, data.channels, data.image_size)
        self.model = self.method.wrap(model).to(self.device)
        if t.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        replicas = distributed.replicate(self.model, self.device)  # DDP when there are several processes
        self.forward = compiled(replicas, t.compile)
        # testing runs on the bare model: each process tests its own shard, without collectives
        self.eval_forward = self.forward if replicas is self.model else compiled(self.model, t.compile)
        self.optimizer = build_optimizer(cfg.optimizer, self.model)
        self.eager_reason = eager_reason(cfg, self.device, self.method, self.optimizer)
        self.autocast = autocast(self.precision, self.device, cache=self.eager_reason is not None)
        self.first_pass = distributed.first_pass_context(
            replicas, cfg.optimizer.get("perturb_sync", "global"), self.optimizer.keeps_clean_grad
        )
        self.no_sync = distributed.no_sync(replicas)
        self.guard = StepGuard(self.model, self.optimizer, t.nonfinite_window)
        if self.precision == "fp16":
            self.optimizer.loss_scaler = LossScaler(self.device)
        self.generator = torch.Generator()
        self.workers = usable_workers(t.workers, "trainer.workers")
        train_set = self.method.train_set(data.train)
        if t.batch_size > len(train_set):
            raise UserError(
                f"trainer.batch_size={t.batch_size} is larger than the training set ({len(train_set)} images); "
                "lower trainer.batch_size"
            )
        if use_gpu_loader(cfg, self.device, data, train_set):
            self.train_loader, self.test_loader = gpu_loaders(cfg, self.device, data, cfg.seed)
        else:
            self.train_loader = self._loader(train_set, t.batch_size, shuffle=True)
            self.test_loader = self._loader(data.test, t.eval_batch_size, shuffle=False)
        self.captured: CapturedStep | None = None  # made at the first step, after a resume has loaded its state
        domains = data.test_domains or {}
        self.domain_loaders = {name: self._loader(d, t.eval_batch_size, shuffle=False) for name, d in domains.items()}
        self.steps_per_epoch = self.optimizer.steps_per_epoch = len(self.train_loader)
        # `trainer.steps` counts optimizer steps instead of epochs: the schedules span exactly that many
        horizon = t.epochs if t.get("steps") is None else t.steps / self.steps_per_epoch
        self.epochs = math.ceil(horizon)
        self.max_steps = min((n for n in (t.max_steps, t.get("steps")) if n is not None), default=None)
        self.schedule = StepSchedule(cfg.schedule, cfg.optimizer, horizon, self.steps_per_epoch)
        self.epoch, self.step = 0, 0  # epochs finished, optimizer steps taken
        self.resume_rng: dict | None = None  # this process's RNG state at a mid-epoch checkpoint
        self.partial: dict | None = None  # the interrupted epoch's statistics and seconds so far
        self.lpf_batches: Batches | None = None  # built on the first LPF measurement

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        """Training: this process's share of each global batch, in the epoch's order; testing: its shard."""
        workers = self.workers
        if shuffle:
            batch_size = distributed.local_batch(batch_size, "trainer.batch_size")
            sampler = EpochSampler(
                dataset, distributed.world_size(), distributed.rank(), epoch_seed(self.cfg.seed, 0), batch_size
            )
            dataset = BatchSeeded(dataset)
        else:
            sampler = distributed.shard(len(dataset))
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            generator=self.generator if shuffle else None,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0 and self.cfg.trainer.persistent_workers,
        )

    @property
    def done(self) -> bool:
        """Whether the run has trained all its epochs or steps, or reached `max_steps`."""
        return self.epoch >= self.epochs or (self.max_steps is not None and self.step >= self.max_steps)

    def train_epoch(self) -> dict:
        """Train one epoch; returns its loss, accuracy, radius statistics, speed and seconds."""
        t, seed = self.cfg.trainer, epoch_seed(self.cfg.seed, self.epoch)
        if self.step == 0:
            self._warm_start()
        seed = mixed_seed(seed, distributed.rank()) if distributed.rank() else seed  # augment each share differently
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.generator.manual_seed(seed)
        stats, trace, done_seconds = self._resume_epoch()
        self.model.train()
        start = time.perf_counter()
        progress = None if t.progress and distributed.is_main() else True  # tqdm's None: shown on a terminal only
        batches = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}", leave=False, disable=progress)
        for inputs, labels in batches:
            if self.max_steps is not None and self.step >= self.max_steps:
                break
            inputs, labels = self._to_device(inputs, labels)
            self.schedule.apply(self.optimizer, self.step)
            batch = self.method.batch(inputs, labels, self.step / self.steps_per_epoch)
            self.guard.before()
            key = self.optimizer.begin_step()
            if self.eager_reason is None:
                loss, logits, rho = self._captured_step()(batch.inputs, batch.labels, key=key)
            else:
                loss, logits, rho = self._optimizer_step(batch)
            stats.add_batch(loss, logits, batch.labels)
            if self.optimizer.perturbing:
                stats.add_rho(rho, self.optimizer.last_clipped, self.optimizer.last_grad_norm)
                trace.add(self.step, rho, self.optimizer.last_clipped)
            self.step += 1
            self.method.after_step(self.step, batch)
            self.guard.after(self.step)
            self._stop_if_asked(stats, trace, done_seconds + time.perf_counter() - start)
        self.epoch += 1
        if self.done and self.optimizer.refresh_bn_before_final_test:
            self._recompute_bn_statistics()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = done_seconds + time.perf_counter() - start
        stats.all_reduce()
        record = stats.read("train")
        return record | {
            "lr": self.optimizer.param_groups[0]["initial_lr"] * self.schedule.lr_factor(self.step),
            "budget_factor": self.schedule.budget_factor(self.step),
            "skipped_steps": int(self.optimizer.skipped_steps.item()),
            "images_per_s": stats.samples / seconds,
            "train_seconds": seconds,
            "rho_trace": trace.read(),
        }

    def _optimizer_step(self, batch: Batch, optimizer: SharpnessAware | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One step of `optimizer` (the run's by default) on `batch`: the mean loss at w, the logits the
        training accuracy is read from, and the step's radius."""
        optimizer = optimizer or self.optimizer
        closure = self._closure(batch, optimizer)
        optimizer.zero_grad(set_to_none=True)
        loss = optimizer.step(closure)
        return loss, closure.logits, optimizer.last_rho

    def _closure(self, batch: Batch, optimizer: SharpnessAware) -> BatchClosure:
        """The passes of a step of `optimizer` on `batch`, each in `trainer.accumulation_steps` micro-batches."""
        t = self.cfg.trainer
        return BatchClosure(
            self.forward,
            batch,
            self.autocast,
            self.method.loss,
            optimizer.loss_scaler,
            freeze_bn=t.bn_second_pass == "freeze",
            first_pass=self.first_pass if optimizer.perturbing else nullcontext,
            micro_batches=t.accumulation_steps,
            no_sync=self.no_sync,
        )

    def _warm_start(self) -> None:
        """The steps a method declares before the run's own (ERM++'s linear probe), at most `trainer.max_steps`
        of them (a cap on every phase): only its module trains, with plain steps of the base optimizer of its own."""
        phase = self.method.warm_start()
        if phase is None:
            return
        cap = self.cfg.trainer.max_steps
        steps = phase.steps if cap is None else min(phase.steps, cap)
        trained = {id(p) for p in phase.module.parameters()}
        frozen = [p for p in self.model.parameters() if p.requires_grad and id(p) not in trained]
        optimizer = build_optimizer(OmegaConf.merge(self.cfg.optimizer, {"name": "sgd"}), phase.module)
        if self.optimizer.loss_scaler is not None:
            optimizer.loss_scaler = LossScaler(self.device)
        self.model.train()
        batches = endless(self.train_loader)
        for p in frozen:
            p.requires_grad_(False)
        try:
            for _ in range(steps):
                inputs, labels = self._to_device(*next(batches))
                self._optimizer_step(self.method.batch(inputs, labels, 0.0), optimizer)
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def _captured_step(self) -> CapturedStep:
        """The step as a CUDA graph; learning rates become tensors on the device, so schedules reach the graph."""
        if self.captured is None:
            lr_on_device(self.optimizer, self.device)
            self.captured = CapturedStep(lambda inputs, labels: self._optimizer_step(Batch(inputs, labels)))
        return self.captured

    @torch.no_grad()
    def _recompute_bn_statistics(self) -> None:
        """One forward pass over the epoch's training batches in train mode at the weights w, so that BatchNorm's
        running statistics describe w (an optimizer whose passes all ran at perturbed weights asks for it)."""
        self.model.train()
        self._draw_order(self.epoch - 1)
        for inputs, labels in self.train_loader:
            batch = self.method.batch(*self._to_device(inputs, labels), self.epoch)
            with self.autocast:
                self.forward(batch.inputs)

    def _draw_order(self, epoch: int, skip_batches: int = 0) -> None:
        """Make the training loader yield epoch `epoch`'s batches, after its first `skip_batches`."""
        order = self.train_loader if isinstance(self.train_loader, GpuLoader) else self.train_loader.sampler
        order.set_epoch(epoch, skip_batches=skip_batches)

    def _resume_epoch(self) -> tuple[EpochStats, RhoTrace, float]:
        """Start the epoch's sampler where an interrupted epoch stopped, with its statistics, radii and RNG state."""
        done = self.step - self.epoch * self.steps_per_epoch  # batches trained before an interruption
        self._draw_order(self.epoch, skip_batches=done)
        stats, trace, seconds = EpochStats(self.device), RhoTrace(self.cfg.trainer.rho_every), 0.0
        if done and self.resume_rng is not None:
            set_rng_state(self.resume_rng)
        if done and self.partial is not None:
            stats.load_state_dict(self.partial["stats"])
            trace.load_state_dict(self.partial.get("rho", trace.state_dict()))  # absent from older checkpoints
            seconds = self.partial["seconds"]
        self.resume_rng = self.partial = None
        return stats, trace, seconds

    def _stop_if_asked(self, stats: EpochStats, trace: RhoTrace, seconds: float) -> None:
        """After a step: on a stop signal keep the epoch so far (summed over processes on rank 0) and raise."""
        signum = STOP.due(self.step)
        if not signum:
            return
        stats.all_reduce()
        if distributed.is_main():
            self.partial = {"stats": stats.state_dict(), "rho": trace.state_dict(), "seconds": seconds}
        else:
            self.partial = None
        raise Interrupted(signum, self.step)

    def evaluate(self) -> dict:
        """Test loss and accuracy (percent) of the tested weights, each process testing its shard; by domain
        or shot group where the data has them."""
        distributed.broadcast_buffers(self.model)
        model = self.method.eval_model(self.eval_forward)
        if model is not self.eval_forward:  # a method's own copy (ERM++'s average) moves its statistics itself
            distributed.broadcast_buffers(model)
        args = (self.device, self.autocast, self.cfg.trainer.channels_last)
        if self.domain_loaders:
            return domain_record({d: evaluate(model, loader, *args) for d, loader in self.domain_loaders.items()})
        counts = self.data.class_counts
        record = evaluate(model, self.test_loader, *args, num_classes=None if counts is None else self.data.num_classes)
        return record if counts is None else shot_record(record, counts, self.cfg.dataset.few_shot_max)

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
        if self.cfg.trainer.channels_last and inputs.dim() == 4:  # a method's stacked views are not images
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, labels.to(self.device, non_blocking=True)

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly (gathers every process's RNG: all must call it)."""
        scaler = self.optimizer.loss_scaler
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "epoch": self.epoch,
            "step": self.step,
            "rng": distributed.gather(rng_state()),  # one per process
            "partial": self.partial,
            "method": self.method.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`'s output."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] is not None and self.optimizer.loss_scaler is not None:
            self.optimizer.loss_scaler.load_state_dict(state["scaler"])
        self.method.load_state_dict(state.get("method", {}))
        self.epoch, self.step = state["epoch"], state["step"]
        # the RNG state and the statistics matter only to an epoch interrupted halfway
        rank = distributed.rank()
        self.resume_rng = state["rng"][rank] if rank < len(state["rng"]) else None
        self.partial = state["partial"] if distributed.is_main() else None
