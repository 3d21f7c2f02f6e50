"""A stop signal writes last.pt at the next step boundary; the run started again ends as if never stopped."""

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from processes import RUN, TORCHRUN, single_process, torchrun, weights, worker_env

from conftest import QUICK_RUN, ROOT, TINY, compose_config, run_command, smoke_overrides
from lesam.core.run_folder import RunFolder
from lesam.core.run_id import run_id
from lesam.engine import cli
from lesam.engine.guards import StepGuard
from lesam.engine.preemption import STOP, Interrupted
from lesam.engine.run import run

TIMING = {"seconds", "train_seconds", "images_per_s"}


def signal_after_step(monkeypatch, step: int, signum: int = signal.SIGTERM) -> None:
    """Send this process `signum` right after optimizer step number `step`."""
    after = StepGuard.after

    def after_then_signal(self, done: int) -> None:
        after(self, done)
        if done == step:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(StepGuard, "after", after_then_signal)


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def rho_text(folder) -> str | None:
    """rho.jsonl as it is on disk (None without one: methods of one pass keep no radii)."""
    path = RunFolder(folder).rho
    return path.read_text() if path.exists() else None


@pytest.mark.parametrize(
    "optimizer,loader,accumulation",
    [("sgd", "torch", 1), ("lesam", "torch", 1), ("lesam", "gpu", 1), ("lesam", "torch", 2)],
)
def test_sigterm_mid_epoch_then_restart_matches_an_uninterrupted_run(
    optimizer, loader, accumulation, tmp_path, monkeypatch, caplog
):
    tiny = [*TINY["small_cnn"], f"optimizer={optimizer}", f"trainer.loader={loader}", "dataset.augment=basic"]
    tiny += [f"trainer.accumulation_steps={accumulation}", "trainer.rho_every=1"]
    cfg = compose_config(smoke_overrides(tmp_path, "model=small_cnn", *tiny, "trainer.epochs=3"))
    # 64 images in batches of 16: 4 steps an epoch; BatchNorm and augmentation, so their state must resume too
    whole = run(cfg, folder=tmp_path / "whole")

    handler = signal.getsignal(signal.SIGTERM)
    signal_after_step(monkeypatch, 6)  # halfway through epoch 2
    with pytest.raises(Interrupted) as stop:
        run(cfg, folder=tmp_path / "parts")
    monkeypatch.undo()
    assert (stop.value.signum, stop.value.step) == (signal.SIGTERM, 6)
    assert signal.getsignal(signal.SIGTERM) == handler  # the run gives the signal back
    state = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["trainer"]
    assert (state["epoch"], state["step"]) == (1, 6)
    assert not (tmp_path / "parts" / "final.json").exists()

    with caplog.at_level(logging.INFO, logger="lesam"):
        parts = run(cfg, folder=tmp_path / "parts")
    assert f"resuming {tmp_path / 'parts'} at step 6, 2 of 4 steps into epoch 2" in caplog.messages
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "parts")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert without_timing(RunFolder(tmp_path / "whole").read_metrics()) == without_timing(
        RunFolder(tmp_path / "parts").read_metrics()
    )
    assert rho_text(tmp_path / "parts") == rho_text(tmp_path / "whole")  # the radii before the stop too
    assert {k: v for k, v in whole.items() if k != "seconds"} == {k: v for k, v in parts.items() if k != "seconds"}


def test_the_previous_handler_runs_after_the_checkpoint(tmp_path, monkeypatch):
    """submitit requeues the job from its own handler: it must find last.pt already written."""
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", *TINY["mlp"], "optimizer=sgd", "trainer.epochs=2"))
    seen = []

    def requeue(signum, frame):
        state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]
        seen.append((signum, state["step"]))

    previous = signal.signal(signal.SIGUSR1, requeue)
    try:
        signal_after_step(monkeypatch, 3, signal.SIGUSR1)
        with pytest.raises(Interrupted):
            run(cfg, folder=tmp_path / "run")
        assert signal.getsignal(signal.SIGUSR1) == requeue
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert seen == [(signal.SIGUSR1, 3)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_to_train_py_exits_with_one_line(signum, tmp_path):
    """The stop is said once, in the run's log (stdout and train.log), not again on stderr."""
    overrides = smoke_overrides(
        tmp_path, "model=mlp", *TINY["mlp"], "optimizer=lesam", "dataset.num_train=1024", "trainer.epochs=20"
    )
    train = subprocess.Popen(
        [sys.executable, "train.py", *overrides], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in train.stdout:
        if line.startswith("epoch 1:"):
            train.send_signal(signum)  # SIGINT: what Ctrl-C sends
            break
    stdout, stderr = train.communicate(timeout=300)
    lines = [x for x in stdout.splitlines() if x.startswith("stopped by")]
    assert train.returncode == 128 + signum, stderr  # 143 for SIGTERM, 130 for Ctrl-C
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {signum.name} after step "), stdout
    assert not stderr.strip(), stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (folder / "train.log").read_text().count(lines[0]) == 1
    assert f"wrote {folder / 'last.pt'}" in lines[0]
    state = torch.load(folder / "last.pt", weights_only=True)["trainer"]
    assert f"after step {state['step']}:" in lines[0] and state["step"] > 64  # past epoch 1
    assert not (folder / "final.json").exists()


def test_ctrl_c_stops_with_a_checkpoint_and_a_second_one_aborts_at_once(tmp_path, monkeypatch):
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", *TINY["mlp"], "optimizer=sgd", "trainer.epochs=2"))
    signal_after_step(monkeypatch, 3, signal.SIGINT)
    try:
        with pytest.raises(Interrupted) as stop:
            run(cfg, folder=tmp_path / "run")
    except KeyboardInterrupt:  # caught here, or pytest would take it for the user's and end the session
        pytest.fail("Ctrl-C ended the run without a checkpoint")
    assert (stop.value.signum, stop.value.exit_status) == (signal.SIGINT, 130)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]["step"] == 3

    STOP.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # recorded: the loop stops at the next step boundary
        assert STOP.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second one does not wait
            time.sleep(1)  # time for the handler to run, had it not raised at once
    finally:
        STOP.uninstall()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_two_ctrl_c_while_a_checkpoint_is_written_end_train_py_with_one_line(tmp_path):
    """The second Ctrl-C lands inside torch writing last.pt: one line and 130, not torch's error and a traceback."""
    fault = [sys.executable, "tests/faulty_train.py", "two-ctrl-c-in-checkpoint:1"]
    result = run_command([*fault, *QUICK_RUN, f"output_root={tmp_path}"])
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines() == [cli.ABORTED]


@pytest.mark.slow  # 19 s: two torchrun launches
def test_sigterm_to_torchrun_stops_both_processes_and_they_resume(tmp_path):
    # SGD: LE-SAM on a task it fits to a zero loss divides by a vanishing gradient norm, which
    # makes 200 steps amplify the rounding differences between one and two processes
    overrides = [*RUN, "optimizer=sgd", "dataset.num_train=512", "trainer.epochs=6", f"output_root={tmp_path}"]
    launch = subprocess.Popen(
        [*TORCHRUN, *overrides], cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in launch.stdout:
        if line.startswith("epoch 1:"):
            launch.send_signal(signal.SIGTERM)  # torchrun passes it on to both processes
            break
    output = launch.communicate(timeout=300)[0]
    cfg = compose_config([*RUN, "optimizer=sgd", "dataset.num_train=512", "trainer.epochs=6"])
    folder = tmp_path / run_id(cfg)
    state = torch.load(folder / "last.pt", weights_only=True)["trainer"]
    assert "stopped by SIGTERM" in output, output[-3000:]
    assert state["step"] % 10 == 0 and state["step"] > 32  # the processes agree every 10 steps
    assert len(state["rng"]) == 2 and not (folder / "final.json").exists()

    result = torchrun(*overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    _, alone = single_process(tmp_path / "alone", "optimizer=sgd", "dataset.num_train=512", "trainer.epochs=6")
    a, b = weights(alone), weights(folder)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    assert len(RunFolder(folder).read_metrics()) == 6


def test_stop_request_is_cleared_for_the_next_run():
    STOP.signum = signal.SIGTERM
    STOP.install()
    try:
        assert STOP.due(1) == 0
    finally:
        STOP.uninstall()
