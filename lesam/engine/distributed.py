"""The processes of one run: who is who, the process group, and what only rank 0 does.

A run launched by torchrun or srun is one process per GPU (or several on the CPU, with gloo).
Every process trains on its share of each global batch, DDP averages the gradients, and rank 0
alone writes the run folder and logs.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from lesam.core.errors import UserError

_host_group: dist.ProcessGroup | None = None  # gloo, for small host-side agreements that must not wait on the GPU


@dataclass(frozen=True)
class Placement:
    """This process's rank among all processes, its rank on its node, and how many there are."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1


def placement(env: Mapping[str, str] = os.environ) -> Placement:
    """torchrun's RANK/LOCAL_RANK/WORLD_SIZE, else srun's SLURM_PROCID/SLURM_LOCALID/SLURM_STEP_NUM_TASKS.

    SLURM's step variables exist only inside `srun` (one process per task), not in the batch
    script itself, so a plain `python train.py` in an allocation stays a single process.
    """
    if "RANK" in env and "WORLD_SIZE" in env:
        return Placement(int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]))
    if "SLURM_STEP_NUM_TASKS" in env and "SLURM_PROCID" in env:
        return Placement(int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)), int(env["SLURM_STEP_NUM_TASKS"]))
    return Placement()


def rank() -> int:
    """This process's rank (0 when alone)."""
    return placement().rank


def world_size() -> int:
    """The number of processes training together."""
    return placement().world_size


def is_main() -> bool:
    """Whether this process writes the run folder and logs (rank 0)."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group if launched as several processes; returns this process's device.

    NCCL on GPUs, gloo on the CPU; each process takes the GPU of its local rank. The group is
    made once per process, so the later jobs of a multirun reuse it.
    """
    global _host_group
    where = placement()
    if where.world_size == 1:
        return device
    if device.type == "cuda":
        # srun may show each task only its own GPU: then the local rank indexes a list of one
        device = torch.device("cuda", where.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        _rendezvous_from_slurm(os.environ)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=where.rank, world_size=where.world_size)
        _host_group = dist.new_group(backend="gloo") if backend == "nccl" else None
        atexit.register(dist.destroy_process_group)
    if where.rank != 0:
        logging.getLogger("lesam").setLevel(logging.WARNING)
    return device


def _rendezvous_from_slurm(env: MutableMapping[str, str]) -> None:
    """Under srun without torchrun: rank 0 listens on the job's first node, on a port fixed by the job id."""
    if "MASTER_ADDR" not in env:
        env["MASTER_ADDR"] = first_host(env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "localhost"))
    if "MASTER_PORT" not in env:
        env["MASTER_PORT"] = str(20000 + int(env.get("SLURM_JOB_ID", "9500")) % 20000)


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: 'gpu[03-04,07],cpu1' -> 'gpu03'."""
    prefix = re.match(r"[^,\[]*", nodelist).group()
    rest = nodelist[len(prefix) :]
    if not rest.startswith("["):
        return prefix
    ranges, _, after = rest[1:].partition("]")
    suffix = re.match(r"[^,\[]*", after).group()
    return prefix + re.split(r"[,-]", ranges)[0] + suffix


def replicate(model: nn.Module, device: torch.device) -> nn.Module:
    """The model wrapped in DDP (gradients averaged over the processes in backward), or itself alone."""
    if world_size() == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def local_batch(global_batch: int, key: str) -> int:
    """One process's share of a global batch; the batch must split evenly."""
    n = world_size()
    if global_batch % n:
        raise UserError(
            f"{key}={global_batch} is the global batch and must split evenly over the {n} processes; "
            f"choose a multiple of {n}"
        )
    return global_batch // n


def first_pass_context(
    replicas: nn.Module, perturb_sync: str, keeps_clean_grad: bool
) -> Callable[[], AbstractContextManager]:
    """The context of a step's first forward-backward, the one the perturbation is computed from.

    `global`: all-reduced like every pass, so every process perturbs along the full batch's
    gradient, as one process with the whole batch would. `local`: inside DDP's `no_sync()`,
    so each process perturbs along its own share's gradient (m-sharpness, m = the per-process
    batch); the second pass is all-reduced, so the update is still the same everywhere.
    """
    if perturb_sync == "global" or not isinstance(replicas, DistributedDataParallel):
        return nullcontext
    if keeps_clean_grad:
        raise UserError(
            "optimizer.perturb_sync=local leaves each process its own first-pass gradient, but this optimizer "
            "also descends along that gradient, which would make the processes' weights drift apart; "
            "use optimizer.perturb_sync=global"
        )
    return replicas.no_sync


def no_sync(replicas: nn.Module) -> Callable[[], AbstractContextManager]:
    """DDP's `no_sync` (a backward keeps its gradients local, to be all-reduced with the next one), or nothing."""
    return replicas.no_sync if isinstance(replicas, DistributedDataParallel) else nullcontext


def broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics), the ones its checkpoint holds.

    DDP sends them at the start of each training forward, but each process's last forward then
    moves its own copy with its own share of the batch.
    """
    if dist.is_initialized() and world_size() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def shard(n: int) -> range:
    """This process's indices of an n-item evaluation set: every world_size-th, none repeated."""
    return range(rank(), n, world_size())


def all_reduce(tensor: Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> Tensor:
    """Reduce `tensor` in place over the processes (nothing to do when alone)."""
    if dist.is_initialized() and world_size() > 1:
        dist.all_reduce(tensor, op=op)
    return tensor


def max_over_processes(value: int) -> int:
    """The largest of the processes' `value`s: a collective between the hosts (gloo), never a GPU sync."""
    if not (dist.is_initialized() and world_size() > 1):
        return value
    largest = torch.tensor(value)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX, group=_host_group)
    return int(largest)


def gather(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order (a list of one when alone)."""
    if not (dist.is_initialized() and world_size() > 1):
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    """Wait until every process gets here."""
    if dist.is_initialized() and world_size() > 1:
        dist.barrier()
