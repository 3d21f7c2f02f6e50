"""Every optimizer's training step can be captured as one CUDA graph: checked on the CPU.

The trainer's captured path runs with lesam.engine.cuda_graph.CapturedStep replaced by
capture_check.EmulatedCapture, which fails on a host read inside a step and on a replay that would
differ from its capture (another operation, a host-side constant, other persistent memory).
"""

import pytest
import torch
from capture_check import EmulatedCapture, HostRead, HostReads, StepTrace

import lesam.engine.trainer as trainer_module
from conftest import TINY, compose_config, smoke_overrides
from lesam.engine.trainer import Trainer
from lesam.optim import ESAM, LESAM

STEPS_PER_EPOCH, EPOCHS = 8, 2
OPTIMIZERS = {
    "sgd": [],
    "sam": [],
    "lesam": [],
    "lesam_plus": [],
    "asam": [],
    "esam": ["optimizer.beta=0.5", "optimizer.gamma=0.5"],
    "fsam": [],
    "eigensam": ["optimizer.freq=2", "optimizer.power_iters=2"],  # refines v at batches 2, 4 and 6 of each epoch
    "gsam": [],
    "ssam": [],
    "msam": [],
}
LESAM_PHASES = {  # each changes the radius from step to step through tensors filled in place; what it shows
    "clip": (["optimizer.rho_max=1e-4"], lambda rho: all(r == pytest.approx(1e-4) for r in rho)),
    "annealing": (["optimizer.anneal_start_epoch=0"], lambda rho: rho[-1] < rho[0] / 10),
    "warm-up": (["optimizer.delta_warmup_epochs=2"], lambda rho: rho[-1] > rho[1] > rho[0]),
    "plain steps first": (["optimizer.start_epoch=1"], lambda rho: len(rho) == (EPOCHS - 1) * STEPS_PER_EPOCH),
}


def emulated_trainer(tmp_path, monkeypatch, *overrides: str) -> Trainer:
    """A trainer on the CPU that takes the captured path, with the emulated capture in place of the CUDA graph."""
    monkeypatch.setattr(trainer_module, "CapturedStep", EmulatedCapture)
    cfg = compose_config(
        smoke_overrides(
            tmp_path,
            "model=small_cnn",  # BatchNorm, whose running statistics a step also updates
            *TINY["small_cnn"],
            f"dataset.num_train={16 * STEPS_PER_EPOCH}",
            "dataset.num_test=16",
            "dataset.image_size=8",
            f"trainer.epochs={EPOCHS}",
            "schedule.warmup_epochs=1",  # the learning rate changes every step
            *overrides,
        )
    )
    trainer = Trainer(cfg)
    trainer.eager_reason = None  # take the captured path, as on a GPU
    begin_step = trainer.optimizer.begin_step

    def guarded_begin_step():
        with HostReads():
            return begin_step()

    trainer.optimizer.begin_step = guarded_begin_step
    return trainer


def train(trainer: Trainer) -> EmulatedCapture:
    while not trainer.done:
        trainer.train_epoch()
    return trainer.captured


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_step_replays_as_captured_without_host_reads(tmp_path, monkeypatch, name):
    captured = train(emulated_trainer(tmp_path, monkeypatch, f"optimizer={name}", *OPTIMIZERS[name]))
    assert captured.replays > 0
    if name == "eigensam":  # a graph with the power iteration and one without, each replayed
        keys = {key for (_, key), calls in captured.calls.items() if calls > captured.warmup + 1}
        assert {refine for _, refine, _ in keys} == {True, False}, captured.calls


@pytest.mark.parametrize("phase", LESAM_PHASES)
def test_lesam_phases_replay_as_captured(tmp_path, monkeypatch, phase):
    overrides, shows = LESAM_PHASES[phase]
    trainer = emulated_trainer(tmp_path, monkeypatch, "optimizer=lesam", "trainer.rho_every=1", *overrides)
    rho = [r for _ in range(EPOCHS) for r in (trainer.train_epoch()["rho_trace"] or {"rho": []})["rho"]]
    assert trainer.captured.replays > 0
    assert shows(rho), rho


def test_the_captured_path_trains_what_the_eager_one_does(tmp_path, monkeypatch):
    """The same weights and radii, whether the trainer takes the captured path or the eager one."""
    overrides = ("optimizer=esam", "optimizer.beta=0.5", "optimizer.gamma=0.5", "trainer.rho_every=1")
    emulated = emulated_trainer(tmp_path, monkeypatch, *overrides)
    eager = emulated_trainer(tmp_path, monkeypatch, *overrides)
    eager.eager_reason = "eager"
    traces = [[t.train_epoch()["rho_trace"]["rho"] for _ in range(EPOCHS)] for t in (emulated, eager)]
    assert emulated.captured.replays > 0 and eager.captured is None
    torch.testing.assert_close(torch.tensor(traces[0]), torch.tensor(traces[1]), rtol=1e-6, atol=0)
    for a, b in zip(emulated.model.parameters(), eager.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# ---- the checks can fail --------------------------------------------------------------------


def test_a_host_read_in_a_step_is_caught(tmp_path, monkeypatch):
    radius = LESAM.radius
    monkeypatch.setattr(LESAM, "radius", lambda self, norm: radius(self, norm) * (norm.item() > 0))
    with pytest.raises(HostRead, match="Tensor.item inside a step"):
        train(emulated_trainer(tmp_path, monkeypatch, "optimizer=lesam"))


@pytest.mark.parametrize("read", [bool, float, lambda t: t.tolist(), lambda t: t.cpu(), lambda t: t.numpy()])
def test_each_kind_of_host_read_is_caught(read):
    t = torch.ones(())
    with pytest.raises(HostRead), HostReads():
        read(t)


def test_a_synchronize_in_a_step_is_caught():
    with pytest.raises(HostRead, match="synchronize"), HostReads():
        torch.cuda.synchronize()


def test_a_per_step_host_decision_is_caught(tmp_path, monkeypatch):
    """ESAM's mask drawn as host floats inside the step (as it once was) would be frozen into the graph."""
    perturbation = ESAM.perturbation
    stream = iter(range(10**6))

    def host_mask(self, params, grads):
        mask = [float((next(stream) * 7919) % 3 == 0) for _ in grads]
        return perturbation(self, params, torch._foreach_mul(grads, mask))

    monkeypatch.setattr(ESAM, "perturbation", host_mask)
    with pytest.raises(AssertionError, match="differs from its capture"):
        train(emulated_trainer(tmp_path, monkeypatch, "optimizer=esam", "optimizer.beta=1.0"))


def test_new_state_memory_in_a_step_is_caught():
    """A step that puts a freshly made tensor where the next one reads it: a graph would read the old memory."""
    state = {"v": torch.zeros(3)}

    def step():
        state["v"] = state["v"] + 1

    traces = []
    for _ in range(2):
        with StepTrace() as trace:
            step()
        traces.append(trace.ops)
    assert traces[0] != traces[1]


@pytest.mark.parametrize("first", ["captured", "eager"])
def test_a_run_resumes_on_the_other_path(tmp_path, monkeypatch, first):
    """The step path is operational: a checkpoint of either path goes on along the other, as if never stopped."""
    overrides = ("optimizer=esam", "optimizer.beta=0.5", "optimizer.gamma=0.5")  # its draws go on from the checkpoint
    started, resumed, straight = (emulated_trainer(tmp_path, monkeypatch, *overrides) for _ in range(3))
    for trainer, path in ((started, first), (resumed, "eager" if first == "captured" else "captured")):
        trainer.eager_reason = "eager" if path == "eager" else None
    straight.eager_reason = "eager"
    started.train_epoch()
    resumed.load_state_dict(started.state_dict())
    resumed.train_epoch()
    straight.train_epoch()
    straight.train_epoch()
    for a, b in zip(resumed.model.parameters(), straight.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
