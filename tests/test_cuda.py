"""On a GPU: the captured (and compiled) step trains what the eager one does. Skipped without CUDA.

Run on a machine with a GPU: `python -m pytest -q -s tests/test_cuda.py` (each test prints how far apart
the two paths' weights ended). On the CPU, test_capturable checks what capture needs without a GPU.
"""

import pytest
import torch

from conftest import compose_config
from lesam.engine.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
BF16_TOLERANCE = 2**-7  # bf16's relative precision: the paths' weights may part by rounding, not more


def trained(steps: int, *overrides: str) -> Trainer:
    """ResNet-18 on CIFAR-shaped synthetic data for `steps` steps from seed 0, bf16, the GPU loader."""
    cfg = compose_config(
        [
            "dataset=synthetic",
            f"dataset.num_train={128 * steps}",
            "dataset.num_test=16",
            "dataset.augment=basic",
            "model=resnet18",
            "trainer.batch_size=128",
            "trainer.device=cuda",
            "trainer.loader=gpu",
            "trainer.channels_last=true",
            "trainer.progress=false",
            *overrides,
        ]
    )
    trainer = Trainer(cfg)
    trainer.train_epoch()
    assert trainer.step == steps
    return trainer


def distance(a: Trainer, b: Trainer) -> tuple[float, bool]:
    """The relative l2 distance of two models' weights, and whether they are bitwise equal."""
    x = torch.cat([p.detach().flatten().float() for p in a.model.parameters()])
    y = torch.cat([p.detach().flatten().float() for p in b.model.parameters()])
    return ((x - y).norm() / x.norm()).item(), torch.equal(x, y)


@pytest.mark.parametrize(
    "steps,optimizer",
    [
        (200, ["optimizer=lesam"]),
        (60, ["optimizer=esam"]),  # its random share of tensors and its selected samples
        (60, ["optimizer=eigensam", "optimizer.freq=10"]),  # a graph with the power iteration and one without
    ],
    ids=["lesam", "esam", "eigensam"],
)
def test_the_captured_step_trains_what_the_eager_step_does(steps, optimizer):
    eager = trained(steps, *optimizer, "trainer.cuda_graph=false")
    captured = trained(steps, *optimizer, "trainer.cuda_graph=true")
    assert eager.eager_reason is not None and captured.eager_reason is None and captured.captured.graphs
    apart, bitwise = distance(eager, captured)
    print(f"\n{optimizer[0]}, {steps} steps: captured vs eager, relative distance {apart:.3g}, bitwise {bitwise}")
    assert apart <= BF16_TOLERANCE


def test_the_compiled_captured_step_takes_the_eager_step_to_bf16_tolerance():
    """Compiled kernels round differently (fused, with fp32 intermediates), so the two paths agree to bf16's
    precision after one step, not bitwise; over many steps training amplifies the difference
    (docs/BENCHMARKS.md, Agreement on the GPU)."""
    eager = trained(1, "optimizer=lesam", "trainer.cuda_graph=false")
    compiled = trained(1, "optimizer=lesam", "trainer.cuda_graph=true", "trainer.compile=true")
    apart, bitwise = distance(eager, compiled)
    print(f"\nlesam, 1 step: compiled and captured vs eager, relative distance {apart:.3g}, bitwise {bitwise}")
    assert apart <= BF16_TOLERANCE
