"""A run stopped after epoch 1 and started again ends exactly as an uninterrupted run."""

import logging

import pytest
import torch

from conftest import compose_config, crash_after_first_checkpoint, smoke_overrides
from lesam.core import run_folder
from lesam.engine.run import run

TIMING = {"seconds", "train_seconds", "images_per_s"}


# overrides that make a method's state cross the epoch boundary (Eigen-SAM's schedule: 4 steps an epoch)
EXTRA = {"lesam": ["optimizer.delta_warmup_epochs=1"], "eigensam": ["optimizer.freq=3"]}


@pytest.mark.parametrize("optimizer", ["sgd", "lesam", "asam", "esam", "fsam", "eigensam", "gsam", "ssam", "msam"])
def test_resume_after_epoch_one_matches_an_uninterrupted_run(optimizer, tmp_path, monkeypatch):
    cfg = compose_config(
        smoke_overrides(
            tmp_path,
            "model=small_cnn",
            "model.width=8",
            f"optimizer={optimizer}",
            "trainer.epochs=3",
            *EXTRA.get(optimizer, []),
        )
    )
    whole = run(cfg, folder=tmp_path / "whole")

    crash_after_first_checkpoint(cfg, tmp_path / "parts", monkeypatch)
    assert len((tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()) == 1
    parts = run(cfg, folder=tmp_path / "parts")

    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["trainer"]
    b = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["trainer"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(run_folder.RunFolder(tmp_path / "whole").read_metrics()) == strip(
        run_folder.RunFolder(tmp_path / "parts").read_metrics()
    )
    assert {k: v for k, v in whole.items() if k != "seconds"} == {k: v for k, v in parts.items() if k != "seconds"}


def test_a_finished_run_says_to_delete_its_folder_to_train_again(tmp_path, caplog):
    """Deleting final.json alone would only rewrite it from last.pt, which is at the end (docs/runs.md)."""
    folder = run_folder.RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.write_final({"test_acc": 50.0})
    caplog.set_level(logging.INFO, logger="lesam")
    assert run(compose_config(smoke_overrides(tmp_path)), folder=folder.path) == {"test_acc": 50.0}
    assert f"finished already: {folder.path} (delete the folder to train it again)" in caplog.text


def test_finished_run_is_skipped(tmp_path):
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=mlp", "model.hidden=[16]", "optimizer=sgd", "trainer.epochs=1")
    )
    first = run(cfg, folder=tmp_path / "run")
    stamp = (tmp_path / "run" / "last.pt").stat().st_mtime_ns
    assert run(cfg, folder=tmp_path / "run") == first
    assert (tmp_path / "run" / "last.pt").stat().st_mtime_ns == stamp
