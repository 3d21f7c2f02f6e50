"""The fast path's switches: each refuses in one line where it cannot run; the loader is chosen as asked.

That the GPU loader trains to the torch loader's accuracy is tested on Fashion-MNIST (test_fashion_mnist),
that it resumes mid-epoch identically in test_preemption.
"""

import pytest
import torch
from test_cli import train

from conftest import TINY, compose_config, smoke_overrides
from lesam.data.gpu_loader import GpuLoader
from lesam.engine.trainer import Trainer
from lesam.optim.schedules import lr_on_device

SMALL = ["debug=smoke", "model=small_cnn", *TINY["small_cnn"]]


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["trainer.cuda_graph=true"], "trainer.cuda_graph=true: it needs trainer.device=cuda"),
        (["trainer.loader=gpu", "dataset.augment=reflect"], "dataset.augment=reflect has no GPU version"),
        (["trainer.loader=gpu", "method=glmc"], "method=glmc changes the training data"),
        (["trainer.loader=fast"], "trainer.loader"),
        (["trainer.compile=fastest"], "trainer.compile"),
        (["trainer.cuda_graph=maybe"], "trainer.cuda_graph"),
    ],
)
def test_a_switch_that_cannot_run_says_why_in_one_line(tmp_path, overrides, needle):
    result, out = train(tmp_path, *SMALL, *overrides)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert not out.exists() or not any(out.iterdir()), list(out.rglob("*"))


@pytest.mark.parametrize("loader,expected", [("auto", torch.utils.data.DataLoader), ("gpu", GpuLoader)])
def test_loader_choice_on_the_cpu(tmp_path, loader, expected):
    cfg = compose_config(smoke_overrides(tmp_path, "model=small_cnn", *TINY["small_cnn"], f"trainer.loader={loader}"))
    trainer = Trainer(cfg)
    assert isinstance(trainer.train_loader, expected) and isinstance(trainer.test_loader, expected)


def test_schedules_reach_the_step_through_tensors_filled_in_place(tmp_path):
    """What a captured step needs: the lr and budget it reads stay the same tensors, and train as floats do."""
    overrides = smoke_overrides(
        tmp_path,
        "model=small_cnn",
        *TINY["small_cnn"],
        "optimizer=lesam",
        "schedule.warmup_epochs=1",
        "optimizer.delta_warmup_epochs=2",
        "optimizer.anneal_start_epoch=null",
        "trainer.epochs=2",
    )
    floats, tensors = Trainer(compose_config(overrides)), Trainer(compose_config(overrides))
    lr_on_device(tensors.optimizer, tensors.device)
    held = [g["lr"] for g in tensors.optimizer.param_groups] + [tensors.optimizer.budget]
    for trainer in (floats, tensors):
        trainer.train_epoch()
    now = [g["lr"] for g in tensors.optimizer.param_groups] + [tensors.optimizer.budget]
    assert all(a is b for a, b in zip(held, now, strict=True))  # the same objects, refilled
    assert held[0].item() == pytest.approx(floats.optimizer.param_groups[0]["lr"])
    assert held[-1].item() == pytest.approx(floats.schedule.budget_factor(floats.step - 1)) and held[-1].item() > 0
    for a, b in zip(floats.model.parameters(), tensors.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
