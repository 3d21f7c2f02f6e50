"""Real data: one epoch of small_cnn on Fashion-MNIST passes 85% test accuracy with each optimizer and loader."""

from pathlib import Path

import pytest

from conftest import compose_config
from lesam.engine.run import run

PACKAGE = Path("/usr/share/datasets/fashion-mnist")
FAMILY = ["asam", "esam", "fsam", "eigensam", "gsam", "ssam", "msam"]


@pytest.mark.skipif(
    not PACKAGE.exists(),
    reason="needs the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
)
@pytest.mark.parametrize(
    "optimizer,loader",
    [("lesam", "torch"), ("lesam", "gpu")]
    + [pytest.param(o, "torch", marks=pytest.mark.slow) for o in ["sgd", "sam", *FAMILY]],  # 25 s each: long
)
def test_one_epoch_passes_85_percent(optimizer, loader, tmp_path):
    cfg = compose_config(
        [
            "experiment=demo",
            f"optimizer={optimizer}",
            f"trainer.loader={loader}",
            "trainer.epochs=1",
            "trainer.device=cpu",
            "trainer.progress=false",
            f"output_root={tmp_path}",
        ]
    )
    final = run(cfg, folder=tmp_path / "run")
    assert final["test_acc"] > 85.0, final
