"""Time SGD, SAM and LE-SAM per epoch across models, loaders and compile modes; print a table, write JSON.

    python scripts/bench.py                              # the full matrix on the GPU
    python scripts/bench.py --models resnet18 --tiny     # a CPU-sized run (what the tests do)
    python scripts/bench.py --models resnet18 --optimizers lesam --paths plain --accumulation 1 2 4
                                                         # peak memory with 1, 2 and 4 micro-batches per pass

Each configuration builds the real training loop (lesam.engine.trainer.Trainer) on CIFAR-shaped
synthetic data, runs warm-up steps (compilation, graph capture), then times `--steps` steps with
CUDA events (a host clock on the CPU). Seconds per epoch are extrapolated to 50,000 images.
The memory of the timed steps is measured too (PeakMemory): the peak, and how far it rose above
what was held before them (activations, gradients, scratch), which gradient accumulation lowers.
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

from lesam.core.files import write_json
from lesam.engine.trainer import Trainer
from lesam.report.plan import composer

EPOCH_IMAGES = 50_000
BATCH = {"resnet18": 128, "wrn28_10": 256, "pyramidnet110": 256}
TINY = {
    "resnet18": ["model.width=8"],
    "wrn28_10": ["model.depth=10", "model.widen_factor=1"],
    "pyramidnet110": ["model.depth=8", "model.alpha=12"],
}
FAST = ["trainer.precision=bf16", "trainer.channels_last=true"]
COMPILE = "trainer.compile=max-autotune-no-cudagraphs"  # fused kernels; the CUDA graph is ours (cuda_graph)
# loader x compile, the plain public recipe first, then the fast path step by step
PATHS = {
    "plain": ["trainer.loader=torch", "trainer.precision=fp32", "trainer.workers=8"],
    "torch": ["trainer.loader=torch", "trainer.workers=8", *FAST],
    "torch+compile": ["trainer.loader=torch", "trainer.workers=8", *FAST, COMPILE],
    "gpu": ["trainer.loader=gpu", *FAST],
    "gpu+compile": ["trainer.loader=gpu", *FAST, COMPILE],
    "gpu+graph": ["trainer.loader=gpu", *FAST, "trainer.cuda_graph=true"],
    "gpu+graph+compile": ["trainer.loader=gpu", *FAST, "trainer.cuda_graph=true", COMPILE],
}
CPU_PATHS = ["plain", "gpu"]  # CUDA graphs and bf16 need a GPU; compiling for the CPU is not what is measured


class Timer:
    """Seconds a block takes: CUDA events on the GPU (no host clock skew), the host clock on the CPU."""

    def __init__(self, cuda: bool) -> None:
        self.cuda, self.seconds = cuda, 0.0

    def __enter__(self) -> Timer:
        if self.cuda:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.begin.record()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.seconds = self.begin.elapsed_time(self.end) / 1e3
        else:
            self.seconds = time.perf_counter() - self.start


class PeakMemory:
    """The peak memory of a block, and how far it rose above what was held when the block began.

    On the GPU: the allocator's counters (torch.cuda.max_memory_allocated). On the CPU: the process's
    resident set, whose high-water mark (VmHWM) is reset when the block begins (/proc/self/clear_refs);
    `return_freed_memory()` makes freed tensors leave the resident set, so that it follows what the
    tensors hold. Both are None where the system offers neither (not Linux).
    """

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.peak_gb: float | None = None
        self.rise_gb: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            self.before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.before = resident("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again from here
            except OSError:
                self.before = None
        return self

    def __exit__(self, *exc) -> None:
        peak = torch.cuda.max_memory_allocated() if self.cuda else resident("VmHWM")
        if self.before is not None and peak is not None:
            self.peak_gb, self.rise_gb = peak / 1e9, (peak - self.before) / 1e9


def resident(field: str) -> int | None:
    """VmRSS (resident now) or VmHWM (the high-water mark) of this process in bytes; None off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith(f"{field}:")), None)
    return None if line is None else int(line.split()[1]) * 1024  # given in kB


def return_freed_memory() -> None:
    """Have glibc map every block of 64 KiB or more on its own and unmap it when freed (a fixed
    M_MMAP_THRESHOLD), instead of keeping freed blocks in the heap, where they stay resident."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: the resident set then overstates what the tensors hold


def compose(overrides: list[str]):
    """The config `python train.py <overrides>` would run."""
    with composer() as c:
        return c.compose(overrides)


def measure(model: str, optimizer: str, path: str, accumulation: int, args: argparse.Namespace) -> dict:
    """Warm up, then time `args.steps` training steps of one configuration (and measure their memory)."""
    batch = args.batch or BATCH[model]
    images = batch * (args.warmup + args.steps)
    overrides = [
        f"model={model}",
        f"optimizer={optimizer}",
        "dataset=synthetic",
        f"dataset.num_train={images}",
        "dataset.num_test=16",
        "dataset.augment=basic",
        f"trainer.batch_size={batch}",
        f"trainer.accumulation_steps={accumulation}",
        "trainer.progress=false",
        f"trainer.device={args.device}",
        *PATHS[path],
        *(TINY[model] if args.tiny else []),
    ]
    if args.device == "cpu":  # later overrides win
        overrides += ["trainer.precision=fp32", "trainer.channels_last=false", "trainer.workers=0"]
    trainer = Trainer(compose(overrides))
    cuda = trainer.device.type == "cuda"
    trainer.max_steps = args.warmup
    trainer.train_epoch()
    trainer.epoch = 0  # go on with the same epoch after the warm-up batches, as a resumed run does
    trainer.max_steps = args.warmup + args.steps
    with PeakMemory(cuda) as memory, Timer(cuda) as timer:
        trainer.train_epoch()
    if trainer.step != trainer.max_steps:
        raise RuntimeError(f"timed {trainer.step - args.warmup} steps instead of {args.steps}")
    step = timer.seconds / args.steps
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    return {
        "model": model,
        "optimizer": optimizer,
        "path": path,
        "batch_size": batch,
        "accumulation_steps": accumulation,
        "step_ms": 1e3 * step,
        "s_per_epoch": step * EPOCH_IMAGES / batch,
        "images_per_s": batch / step,
        "peak_mem_gb": memory.peak_gb,  # GPU: tensors allocated; CPU: the process's resident set
        "step_mem_gb": memory.rise_gb,  # above what was held before the timed steps
        "param_gb": params / 1e9,
    }


def table(rows: list[dict]) -> str:
    """Seconds per epoch, images/s, LE-SAM/SAM and LE-SAM/SGD step-time ratios, peak and step memory."""
    by = {(r["model"], r["path"], r["accumulation_steps"], r["optimizer"]): r for r in rows if "error" not in r}
    lines = [
        f"{'model':<14}{'path':<20}{'opt':<7}{'k':>3}{'s/epoch':>9}{'img/s':>9}{'/SAM':>7}{'/SGD':>7}"
        f"{'peak GB':>9}{'step GB':>9}"
    ]
    for r in rows:
        name = f"{r['model']:<14}{r['path']:<20}{r['optimizer']:<7}{r['accumulation_steps']:>3}"
        if "error" in r:
            lines.append(f"{name} failed: {r['error']}")
            continue
        ratios = [by.get((r["model"], r["path"], r["accumulation_steps"], ref)) for ref in ("sam", "sgd")]
        sam, sgd = (f"{r['step_ms'] / ref['step_ms']:.3f}" if ref else "-" for ref in ratios)
        peak, step = (f"{r[key]:.3f}" if r[key] is not None else "-" for key in ("peak_mem_gb", "step_mem_gb"))
        lines.append(f"{name}{r['s_per_epoch']:>9.2f}{r['images_per_s']:>9.0f}{sam:>7}{sgd:>7}{peak:>9}{step:>9}")
    return "\n".join(lines)


def main() -> None:
    """Run the matrix, write JSON, print the table last."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(BATCH), choices=list(BATCH))
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "sam", "lesam"])
    parser.add_argument(
        "--paths", nargs="+", default=None, choices=list(PATHS), help=f"default: all (cpu: {', '.join(CPU_PATHS)})"
    )
    parser.add_argument("--steps", type=int, default=100, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compile, capture)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the paper's per model)")
    parser.add_argument(
        "--accumulation", nargs="+", type=int, default=[1], metavar="K", help="micro-batches per pass to measure"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--tiny", action="store_true", help="tiny models (a CPU smoke run)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench.json"))
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.paths is None:
        args.paths = list(PATHS) if args.device == "cuda" else CPU_PATHS
    if args.device == "cpu":
        return_freed_memory()
    rows = []
    for model, path, k, optimizer in itertools.product(args.models, args.paths, args.accumulation, args.optimizers):
        try:
            rows.append(measure(model, optimizer, path, k, args))
        except Exception as error:  # noqa: BLE001 - one failed configuration must not lose the others
            failed = {"model": model, "optimizer": optimizer, "path": path, "accumulation_steps": k}
            rows.append(failed | {"error": f"{type(error).__name__}: {error}"})
        print(json.dumps(rows[-1]), flush=True)
    meta = {
        "date": date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "steps": args.steps,
        "warmup": args.warmup,
    }
    records = [r for r in rows if "error" not in r]  # Table 6 reads "records" (lesam.report.bench)
    failed = [r for r in rows if "error" in r]
    write_json(args.out, {"meta": meta, "records": records, "failed": failed})
    print(json.dumps(meta))
    print(table(rows))


if __name__ == "__main__":
    main()
