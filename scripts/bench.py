"""Time SGD, SAM and LE-SAM per epoch across models, loaders and compile modes; print a table, write JSON.

    python scripts/bench.py                              # the full matrix on the GPU
    python scripts/bench.py --models resnet18 --tiny     # a CPU-sized run (what the tests do)

Each configuration builds the real training loop (lesam.engine.trainer.Trainer) on CIFAR-shaped
synthetic data, runs warm-up steps (compilation, graph capture), then times `--steps` steps with
CUDA events (a host clock on the CPU). Seconds per epoch are extrapolated to 50,000 images.
"""

from __future__ import annotations

import argparse
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


def compose(overrides: list[str]):
    """The config `python train.py <overrides>` would run."""
    with composer() as c:
        return c.compose(overrides)


def measure(model: str, optimizer: str, path: str, args: argparse.Namespace) -> dict:
    """Warm up, then time `args.steps` training steps of one configuration."""
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
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.max_steps = args.warmup + args.steps
    with Timer(cuda) as timer:
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
        "step_ms": 1e3 * step,
        "s_per_epoch": step * EPOCH_IMAGES / batch,
        "images_per_s": batch / step,
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
        "param_gb": params / 1e9,
    }


def table(rows: list[dict]) -> str:
    """Seconds per epoch, images/s, LE-SAM/SAM and LE-SAM/SGD step-time ratios and peak memory."""
    by = {(r["model"], r["path"], r["optimizer"]): r for r in rows if "error" not in r}
    lines = [f"{'model':<14}{'path':<20}{'opt':<7}{'s/epoch':>9}{'img/s':>9}{'/SAM':>7}{'/SGD':>7}{'peak GB':>9}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<14}{r['path']:<20}{r['optimizer']:<7} failed: {r['error']}")
            continue
        ratios = [by.get((r["model"], r["path"], ref)) for ref in ("sam", "sgd")]
        sam, sgd = (f"{r['step_ms'] / ref['step_ms']:.3f}" if ref else "-" for ref in ratios)
        memory = f"{r['peak_mem_gb']:.2f}" if r["peak_mem_gb"] is not None else "-"
        lines.append(
            f"{r['model']:<14}{r['path']:<20}{r['optimizer']:<7}{r['s_per_epoch']:>9.2f}{r['images_per_s']:>9.0f}"
            f"{sam:>7}{sgd:>7}{memory:>9}"
        )
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
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--tiny", action="store_true", help="tiny models (a CPU smoke run)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench.json"))
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.paths is None:
        args.paths = list(PATHS) if args.device == "cuda" else CPU_PATHS
    rows = []
    for model, path, optimizer in itertools.product(args.models, args.paths, args.optimizers):
        try:
            rows.append(measure(model, optimizer, path, args))
        except Exception as error:  # noqa: BLE001 - one failed configuration must not lose the others
            rows.append(
                {"model": model, "optimizer": optimizer, "path": path, "error": f"{type(error).__name__}: {error}"}
            )
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
