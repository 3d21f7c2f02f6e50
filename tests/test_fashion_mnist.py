"""Real data: one epoch of small_cnn on Fashion-MNIST passes 85% test accuracy with each optimizer."""

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
@pytest.mark.parametrize("optimizer", ["sgd", "sam", "lesam", *FAMILY])
def test_one_epoch_passes_85_percent(optimizer, tmp_path):
    cfg = compose_config(
        [
            "experiment=demo",
            f"optimizer={optimizer}",
            "trainer.epochs=1",
            "trainer.device=cpu",
            "trainer.progress=false",
            f"output_root={tmp_path}",
        ]
    )
    final = run(cfg, folder=tmp_path / "run")
    assert final["test_acc"] > 85.0, final
