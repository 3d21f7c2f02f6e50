"""Time SGD, SAM and LE-SAM per epoch across models, loaders and compile modes; print a table, write JSON.

    python scripts/bench.py                              # the full matrix on the GPU
    python scripts/bench.py --models resnet18 --tiny     # a CPU-sized run (what the tests do)
    python scripts/bench.py --paths gpu gpu+graph --repeats 3   # median and spread of 3 timed windows each
    python scripts/bench.py --models resnet18 --optimizers lesam --paths gpu+graph --processes 1 2 4
                                                         # 1, 2 and 4 runs at once on one GPU: aggregate images/s
    python scripts/bench.py --models resnet18 --optimizers lesam --paths plain --accumulation 1 2 4
                                                         # peak memory with 1, 2 and 4 micro-batches per pass

Each configuration builds the real training loop (lesam.engine.trainer.Trainer) on CIFAR-shaped
synthetic data (ImageNet-shaped for resnet50), runs warm-up steps (compilation, graph capture), then
times `--repeats` windows of `--steps` steps with CUDA events (a host clock on the CPU): the step time
is the median window's, with the fastest and slowest beside it. Seconds per epoch are extrapolated to
50,000 images. The memory of the timed steps is measured too (PeakMemory): the peak, how far it rose
above what was held before them (activations, gradients, scratch), and what was held before them. Each
configuration is torn down before the next, so none holds memory another measures.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

from lesam.core.files import write_json
from lesam.engine.trainer import Trainer
from lesam.report.plan import composer

EPOCH_IMAGES = 50_000
BATCH = {"resnet18": 128, "wrn28_10": 256, "pyramidnet110": 256, "resnet50": 256}
SHAPE = {"resnet50": ["dataset.image_size=224", "dataset.num_classes=1000"]}  # ImageNet's input; CIFAR's otherwise
TINY = {
    "resnet18": ["model.width=8"],
    "wrn28_10": ["model.depth=10", "model.widen_factor=1"],
    "pyramidnet110": ["model.depth=8", "model.alpha=12"],
}
FAST = ["trainer.precision=bf16", "trainer.channels_last=true"]
COMPILE = "compile"  # stands for trainer.compile=<--compile>
EAGER, GRAPH = "trainer.cuda_graph=false", "trainer.cuda_graph=true"
# loader x compile x graph: a run with no switch set, the plain public recipe, then the fast path step by step
PATHS = {
    "default": [],
    "plain": ["trainer.loader=torch", "trainer.precision=fp32", "trainer.workers=8", EAGER],
    "torch": ["trainer.loader=torch", "trainer.workers=8", *FAST, EAGER],
    "torch+compile": ["trainer.loader=torch", "trainer.workers=8", *FAST, COMPILE, EAGER],
    "gpu": ["trainer.loader=gpu", *FAST, EAGER],
    "gpu+compile": ["trainer.loader=gpu", *FAST, COMPILE, EAGER],
    "gpu+graph": ["trainer.loader=gpu", *FAST, GRAPH],
    "gpu+graph+compile": ["trainer.loader=gpu", *FAST, GRAPH, COMPILE],
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
        self.held_gb: float | None = None

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
            self.peak_gb, self.rise_gb, self.held_gb = peak / 1e9, (peak - self.before) / 1e9, self.before / 1e9


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


def overrides(model: str, optimizer: str, path: str, accumulation: int, args: argparse.Namespace) -> list[str]:
    """The train.py overrides of one configuration, on enough synthetic images for every timed step."""
    batch = args.batch or BATCH[model]
    images = batch * (args.warmup + args.steps * args.repeats + args.profile)
    chosen = [
        f"model={model}",
        f"optimizer={optimizer}",
        "dataset=synthetic",
        f"dataset.num_train={images}",
        "dataset.num_test=16",
        "dataset.augment=basic",
        *SHAPE.get(model, []),
        f"trainer.batch_size={batch}",
        f"trainer.accumulation_steps={accumulation}",
        "trainer.progress=false",
        f"trainer.device={args.device}",
        *(f"trainer.compile={args.compile}" if o == COMPILE else o for o in PATHS[path]),
        *(TINY.get(model, []) if args.tiny else []),
    ]
    if args.device == "cpu":  # later overrides win
        chosen += ["trainer.precision=fp32", "trainer.channels_last=false", "trainer.workers=0"]
    return chosen


def measure(
    model: str, optimizer: str, path: str, accumulation: int, args: argparse.Namespace, ready: Callable = lambda: None
) -> dict:
    """Warm up, call `ready` (other processes' start line), then time `args.repeats` windows of `args.steps` steps."""
    trainer = Trainer(compose(overrides(model, optimizer, path, accumulation, args)))
    cuda = trainer.device.type == "cuda"
    with Timer(cuda) as warmup:
        trainer.max_steps = args.warmup
        trainer.train_epoch()
    ready()
    start, windows = time.time(), []
    with PeakMemory(cuda) as memory:
        for _ in range(args.repeats):
            trainer.epoch = 0  # go on with the same epoch, as a resumed run does
            trainer.max_steps += args.steps
            with Timer(cuda) as timer:
                trainer.train_epoch()
            windows.append(timer.seconds / args.steps)
    if trainer.step != args.warmup + args.steps * args.repeats:
        raise RuntimeError(f"timed {trainer.step - args.warmup} steps instead of {args.steps * args.repeats}")
    kernels = top_kernels(trainer, args.profile) if args.profile else None
    step, batch = statistics.median(windows), trainer.cfg.trainer.batch_size
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    return {
        "model": model,
        "optimizer": optimizer,
        "path": path,
        "batch_size": batch,
        "accumulation_steps": accumulation,
        "step_ms": 1e3 * step,  # the median window's
        "step_ms_min": 1e3 * min(windows),
        "step_ms_max": 1e3 * max(windows),
        "repeats": args.repeats,
        "s_per_epoch": step * EPOCH_IMAGES / batch,
        "images_per_s": batch / step,
        "peak_mem_gb": memory.peak_gb,  # GPU: tensors allocated; CPU: the process's resident set
        "step_mem_gb": memory.rise_gb,  # above what was held before the timed steps
        "held_gb": memory.held_gb,  # held before the timed steps: the model, optimizer state, data, graphs
        "param_gb": params / 1e9,
        "graphs": len(trainer.captured.graphs) if trainer.captured is not None else 0,
        "warmup_s": warmup.seconds,  # compilation and graph capture happen here
        "top_kernels": kernels,
        "wall": [start, time.time()],
    }


def top_kernels(trainer: Trainer, steps: int, top: int = 8) -> list[list]:
    """The operations that took the most time over `steps` more steps, each [name, milliseconds per step]:
    the device's kernels (the profiler sees inside a replayed graph), or the host's operators on the CPU."""
    cuda = trainer.device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CUDA if cuda else torch.profiler.ProfilerActivity.CPU]
    trainer.epoch, trainer.max_steps = 0, trainer.max_steps + steps
    with torch.profiler.profile(activities=activities) as profile:
        trainer.train_epoch()
    spent = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)
    events = sorted(profile.key_averages(), key=spent, reverse=True)[:top]
    return [[e.key[:100], spent(e) / 1e3 / steps] for e in events]


def measure_together(
    model: str, optimizer: str, path: str, accumulation: int, args: argparse.Namespace, processes: int
) -> dict:
    """`processes` copies of one configuration at once (on one GPU), timed from a common start: images/s is
    all of theirs together, step time and memory one run's (the slowest)."""
    if processes == 1:
        row = measure(model, optimizer, path, accumulation, args)
    else:
        context = multiprocessing.get_context("spawn")
        start_line, results = context.Barrier(processes), context.Queue()
        work = (results, start_line, model, optimizer, path, accumulation, args)
        children = [context.Process(target=_measure_in_child, args=work) for _ in range(processes)]
        for child in children:
            child.start()
        rows = [results.get() for _ in children]
        for child in children:
            child.join()
        failed = [r["error"] for r in rows if "error" in r]
        if failed:
            raise RuntimeError(failed[0])
        row = max(rows, key=lambda r: r["step_ms"])
        begin, end = min(r["wall"][0] for r in rows), max(r["wall"][1] for r in rows)
        images = sum(r["batch_size"] * args.steps * args.repeats for r in rows)
        row |= {"images_per_s": images / (end - begin), "peak_mem_gb": max(r["peak_mem_gb"] or 0 for r in rows)}
    row.pop("wall")
    return row | {"processes": processes}


def _measure_in_child(results, start_line, *work) -> None:
    """One of several processes: its row, or its error, into `results`; a failure releases the others."""
    try:
        results.put(measure(*work, ready=lambda: start_line.wait(timeout=1800)))
    except Exception as error:  # noqa: BLE001 - reported by the parent
        start_line.abort()
        results.put({"error": f"{type(error).__name__}: {error}"})


def tear_down(cuda: bool) -> None:
    """Free what the last configuration held (its trainer sits in reference cycles, its compiled model in
    torch.compile's caches), so that the next one's memory is its own."""
    torch._dynamo.reset()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()


def table(rows: list[dict]) -> str:
    """Seconds per epoch (and the spread of the timed windows), images/s, LE-SAM/SAM and LE-SAM/SGD step-time
    ratios, peak and step memory, and the graphs captured; n runs at once, k micro-batches."""
    setting = ("model", "path", "accumulation_steps", "processes")
    by = {tuple(r[k] for k in (*setting, "optimizer")): r for r in rows if "error" not in r}
    lines = [
        f"{'model':<14}{'path':<20}{'opt':<7}{'k':>3}{'n':>3}{'s/epoch':>10}{'spread':>8}{'img/s':>9}{'/SAM':>7}"
        f"{'/SGD':>7}{'peak GB':>9}{'step GB':>9}{'graphs':>7}"
    ]
    for r in rows:
        name = f"{r['model']:<14}{r['path']:<20}{r['optimizer']:<7}{r['accumulation_steps']:>3}{r['processes']:>3}"
        if "error" in r:
            lines.append(f"{name} failed: {r['error']}")
            continue
        ratios = [by.get((*(r[k] for k in setting), ref)) for ref in ("sam", "sgd")]
        sam, sgd = (f"{r['step_ms'] / ref['step_ms']:.3f}" if ref else "-" for ref in ratios)
        spread = f"{100 * (r['step_ms_max'] - r['step_ms_min']) / r['step_ms']:.1f}%"
        peak, step = (f"{r[key]:.3f}" if r[key] is not None else "-" for key in ("peak_mem_gb", "step_mem_gb"))
        lines.append(
            f"{name}{r['s_per_epoch']:>10.2f}{spread:>8}{r['images_per_s']:>9.0f}{sam:>7}{sgd:>7}{peak:>9}{step:>9}"
            f"{r['graphs']:>7}"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the matrix, write JSON after each configuration, print the table last."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "wrn28_10", "pyramidnet110"], choices=list(BATCH))
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "sam", "lesam"])
    parser.add_argument(
        "--paths",
        nargs="+",
        default=None,
        choices=[*PATHS, "all"],
        help=f"all: every path (the default on a GPU; on the CPU: {', '.join(CPU_PATHS)})",
    )
    parser.add_argument("--steps", type=int, default=100, help="timed steps per window")
    parser.add_argument("--repeats", type=int, default=1, help="timed windows per configuration (median, spread)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compile, capture)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the paper's per model)")
    parser.add_argument(
        "--accumulation", nargs="+", type=int, default=[1], metavar="K", help="micro-batches per pass to measure"
    )
    parser.add_argument(
        "--processes", nargs="+", type=int, default=[1], metavar="N", help="runs at once on the device to measure"
    )
    parser.add_argument("--compile", default="max-autotune-no-cudagraphs", help="trainer.compile of the compile paths")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS", help="then profile this many steps")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--tiny", action="store_true", help="tiny models (a CPU smoke run)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench.json"))
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.paths is None or "all" in args.paths:
        args.paths = list(PATHS) if args.device == "cuda" else CPU_PATHS
    if args.device == "cpu":
        return_freed_memory()
    meta = {
        "date": date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "steps": args.steps,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "compile": args.compile,
    }
    rows = []
    matrix = itertools.product(args.models, args.paths, args.accumulation, args.processes, args.optimizers)
    for model, path, k, n, optimizer in matrix:
        try:
            rows.append(measure_together(model, optimizer, path, k, args, n))
        except Exception as error:  # noqa: BLE001 - one failed configuration must not lose the others
            failed = {"model": model, "optimizer": optimizer, "path": path, "accumulation_steps": k, "processes": n}
            rows.append(failed | {"error": f"{type(error).__name__}: {error}"})
        tear_down(args.device == "cuda")
        print(json.dumps(rows[-1]), flush=True)
        records = [r for r in rows if "error" not in r]  # Table 6 reads "records" (lesam.report.bench)
        write_json(args.out, {"meta": meta, "records": records, "failed": [r for r in rows if "error" in r]})
    print(json.dumps(meta))
    for r in rows:
        for name, ms in r.get("top_kernels") or []:
            print(f"{r['model']} {r['path']} {r['optimizer']}: {ms:8.3f} ms/step  {name}")
    print(table(rows))


if __name__ == "__main__":
    main()
