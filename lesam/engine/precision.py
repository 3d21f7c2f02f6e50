"""Devices and number formats: where a run computes and in which precision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from lesam.core.errors import UserError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, key: str = "trainer.device") -> torch.device:
    """`auto` is cuda when a GPU is visible, else cpu; `key` is the config key named in an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}=cuda but no CUDA device is visible; use {key}=auto or cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device, key: str = "trainer.precision") -> str:
    """`auto` is bf16 on cuda and fp32 on cpu; fp16 needs cuda; `key` is the config key named in an error."""
    if name == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise UserError(f"{key}=fp16 needs a CUDA device; use fp32 or bf16 on the cpu")
    return name


def autocast(precision: str, device: torch.device, cache: bool = True) -> AbstractContextManager:
    """Mixed-precision autocast for bf16/fp16; nothing for fp32. A captured CUDA graph needs `cache` off."""
    if precision not in DTYPES:
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision], cache_enabled=cache)


@contextmanager
def full_fp32() -> Iterator[None]:
    """Turn TF32 off for the block: curvature and small loss differences need every bit of fp32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
