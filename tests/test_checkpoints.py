"""A corrupt, foreign or unsafe last.pt is reported with its path and left untouched; nothing written is lost."""

import random

import pytest
import torch

from conftest import TINY, compose_config, smoke_overrides
from lesam.analysis.loaded_run import load_run
from lesam.core.errors import UserError
from lesam.core.run_folder import RunFolder
from lesam.engine.run import run


class RunsCode:
    """Unpickling this calls a function: what weights_only refuses."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('ran').write_text('code ran')",))


def finished_run(tmp_path, *overrides: str) -> tuple:
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=mlp", *TINY["mlp"], "optimizer=sgd", "trainer.epochs=1", *overrides)
    )
    run(cfg, folder=tmp_path / "run")
    return cfg, RunFolder(tmp_path / "run")


def restart(cfg, folder: RunFolder) -> str:
    """Run again from last.pt (final.json removed) and return the error's line; last.pt must stay as it was."""
    folder.final.unlink(missing_ok=True)
    before = folder.checkpoint.read_bytes()
    with pytest.raises(UserError) as error:
        run(cfg, folder=folder.path)
    assert folder.checkpoint.read_bytes() == before
    assert str(folder.checkpoint) in str(error.value) and "\n" not in str(error.value)
    return str(error.value)


def test_a_truncated_checkpoint_is_reported(tmp_path):
    cfg, folder = finished_run(tmp_path)
    folder.checkpoint.write_bytes(folder.checkpoint.read_bytes()[:1000])
    assert "cannot read" in restart(cfg, folder)


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_are_called_not_a_checkpoint_not_a_pickled_object(tmp_path, seed):
    folder = RunFolder(tmp_path)
    folder.checkpoint.write_bytes(random.Random(seed).randbytes(4096))
    with pytest.raises(UserError) as error:
        folder.load_checkpoint()
    message = str(error.value)
    assert message.startswith(f"cannot read '{folder.checkpoint}': it is not a file torch.save wrote"), message
    assert "pickled" not in message


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, folder = finished_run(tmp_path)
    state = torch.load(folder.checkpoint, weights_only=True)
    torch.save(state | {"payload": RunsCode()}, folder.checkpoint)
    assert "refused to load" in restart(cfg, folder)
    with pytest.raises(UserError, match="refused to load"):
        load_run(folder.checkpoint, device="cpu")  # analyze.py reads checkpoints the same way
    assert not (tmp_path / "ran").exists()


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    cfg, folder = finished_run(tmp_path)
    other = compose_config(
        smoke_overrides(tmp_path, "model=mlp", *TINY["mlp"], "optimizer=sgd", "trainer.epochs=1", "seed=1")
    )
    assert "was written by run synthetic-mlp-sgd-s0-" in restart(other, folder)


def test_a_checkpoint_that_does_not_fit_the_model_is_refused(tmp_path):
    cfg, folder = finished_run(tmp_path)
    state = torch.load(folder.checkpoint, weights_only=True)
    del state["run_id"]  # as if written by hand, or by an older version
    state["trainer"]["model"] = {k: torch.zeros(3) for k in state["trainer"]["model"]}
    torch.save(state, folder.checkpoint)
    assert "does not fit this run (Error(s) in loading state_dict" in restart(cfg, folder)


def test_a_metrics_line_cut_off_by_a_crash_is_dropped_on_resume(tmp_path):
    cfg, folder = finished_run(tmp_path, "trainer.epochs=2")
    complete = folder.read_metrics()
    folder.final.unlink()
    with open(folder.metrics, "a") as f:
        f.write('{"epoch": 3, "train_lo')  # a crash in the middle of an append
    assert folder.read_metrics() == complete
    final = run(cfg, folder=folder.path)
    assert final["epochs"] == 2 and [m["epoch"] for m in folder.read_metrics()] == [1, 2]
