"""LE-SAM says when its clip takes over: the clipped share of the steps in the logs, a warning, Figure 5's shading."""

import json
import logging
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_config, smoke_overrides
from lesam.engine.clip_report import clip_warning, run_clipped_fraction
from lesam.engine.epoch_stats import EpochStats
from lesam.engine.rho_trace import RhoTrace
from lesam.engine.run import run
from lesam.optim import LESAM
from lesam.report.figures import radius

# delta 0.35 and rho_max 0.4 clip where ||g|| < delta_t / rho_max: 0.875 at the full budget, 0.4375 at half of it
EPOCHS = [
    (1.0, [0.5, 2.0, 0.8, 0.9, 0.1, 3.0, 0.87], [True, False, True, False, True, False, True]),
    (0.5, [1.0, 0.3, 0.2, 0.5], [False, True, True, False]),
]


def lesam_epoch(opt: LESAM, weight: torch.nn.Parameter, budget: float, norms: list[float]) -> tuple[dict, dict]:
    """Steps on the loss sum(w * c) whose gradient c takes each of `norms` in turn: the epoch's record and trace."""
    stats, trace = EpochStats(torch.device("cpu")), RhoTrace(stride=1)
    opt.perturb_scale = budget
    for step, norm in enumerate(norms):
        direction = torch.ones(4) * norm / 2  # ||c|| = norm
        for move in (opt.first_step, opt.second_step):
            opt.zero_grad()
            (weight * direction).sum().backward()
            move()
        stats.add_rho(opt.last_rho, opt.last_clipped, opt.last_grad_norm)
        trace.add(step, opt.last_rho, opt.last_clipped)
    return stats.read("train"), trace.read()


def test_clipped_fractions_are_exact_on_a_hand_built_sequence_of_gradient_norms():
    weight = torch.nn.Parameter(torch.zeros(4))
    opt = LESAM([weight], torch.optim.SGD, delta=0.35, rho_max=0.4, lr=0.0)
    records = []
    for budget, norms, clipped in EPOCHS:
        record, trace = lesam_epoch(opt, weight, budget, norms)
        assert trace["clipped"] == clipped
        assert (record["perturbed_steps"], record["clipped_steps"]) == (len(norms), sum(clipped))
        assert record["clipped_fraction"] == sum(clipped) / len(norms)
        assert record["grad_norm_mean"] == pytest.approx(sum(norms) / len(norms), rel=1e-6)
        records.append(record)
    assert [r["clipped_fraction"] for r in records] == [4 / 7, 2 / 4]
    assert run_clipped_fraction(records) == 6 / 11


def test_without_a_clip_nothing_is_counted_as_clipped():
    weight = torch.nn.Parameter(torch.zeros(4))
    opt = LESAM([weight], torch.optim.SGD, delta=0.35, rho_max=None, lr=0.0)
    record, trace = lesam_epoch(opt, weight, 1.0, [0.1, 2.0])
    assert opt.last_clipped is None and "clipped" not in trace
    assert "clipped_fraction" not in record and record["grad_norm_mean"] == pytest.approx(1.05)
    assert run_clipped_fraction([record]) is None


@pytest.mark.parametrize("fraction,warns", [(0.0, False), (0.5, False), (0.51, True), (1.0, True)])
def test_the_warning_comes_when_the_clip_binds_in_more_than_half_of_the_steps(fraction, warns):
    record = {"epoch": 3, "clipped_fraction": fraction, "grad_norm_mean": 0.11, "delta": 0.35}
    warning = clip_warning(OmegaConf.create({"rho_max": 0.4}), record)
    assert (warning is not None) == warns
    if warns:
        assert "acted as SAM with rho = rho_max = 0.4" in warning and f"clipped in {fraction:.0%}" in warning
        assert "gradient norm averaged 0.11" in warning and "delta/rho_max = 0.875" in warning
        assert "optimizer.delta=0.022 (rho_max/2 * ||g||)" in warning  # 0.4 / 2 * 0.11


def lesam_run(tmp_path, name, *overrides):
    extra = ("model=mlp", "model.hidden=[8]", "optimizer=lesam", "trainer.epochs=2", "trainer.rho_every=1")
    final = run(compose_config(smoke_overrides(tmp_path, *extra, *overrides)), folder=tmp_path / name)
    metrics = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return final, metrics


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_run_whose_clip_binds_warns_each_such_epoch(tmp_path, caplog):
    """delta 2 over rho_max 0.05 clips wherever ||g|| < 40: every step of a small MLP's."""
    with caplog.at_level(logging.INFO, logger="lesam"):
        final, metrics = lesam_run(tmp_path, "binds", "optimizer.delta=2", "optimizer.rho_max=0.05")
    assert [(m["clipped_steps"], m["perturbed_steps"], m["clipped_fraction"]) for m in metrics] == [(4, 4, 1.0)] * 2
    assert final["clipped_fraction"] == 1.0
    warnings = warnings_of(caplog)
    assert len(warnings) == 2
    for epoch, (warning, m) in enumerate(zip(warnings, metrics, strict=True), 1):
        assert warning.startswith(f"epoch {epoch}: LE-SAM acted as SAM with rho = rho_max = 0.05")
        assert f"optimizer.delta={0.05 / 2 * m['grad_norm_mean']:.3g} " in warning
    assert sum("(clipped 100%)" in r.getMessage() for r in caplog.records) == 2  # the epoch lines


def test_a_run_whose_clip_never_binds_does_not_warn(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="lesam"):
        final, metrics = lesam_run(tmp_path, "free", "optimizer.delta=0.0001")
    assert [(m["clipped_steps"], m["clipped_fraction"]) for m in metrics] == [(0, 0.0)] * 2
    assert final["clipped_fraction"] == 0.0 and warnings_of(caplog) == []
    assert sum("(clipped 0%)" in r.getMessage() for r in caplog.records) == 2


def test_clipped_spans_join_neighbouring_clipped_steps():
    epochs = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 3.0]  # a gap of untraced steps before the last point
    clipped = [True, True, False, True, True, False, True]
    assert radius.clipped_spans(epochs, clipped, 0.25) == [(-0.125, 0.5), (0.625, 0.5), (2.875, 0.25)]


def test_figure_5_draws_rho_max_and_shades_the_clipped_steps(tmp_path, monkeypatch):
    final, _ = lesam_run(tmp_path, "binds", "optimizer.delta=2", "optimizer.rho_max=0.05")
    drawn = {}
    monkeypatch.setattr(radius, "save", lambda fig, out, name: drawn.setdefault("fig", fig))
    cfg = compose_config(smoke_overrides(tmp_path, "optimizer=lesam", "optimizer.rho_max=0.05", "trainer.rho_every=1"))
    trace = [json.loads(x) for x in (tmp_path / "binds" / "rho.jsonl").read_text().splitlines()]
    radius.render([SimpleNamespace(series="LE-SAM", final=final, cfg=cfg, rho=trace, metrics=[])], tmp_path)
    ax = drawn["fig"].axes[0]
    (rho_max,) = [line for line in ax.get_lines() if line.get_label() == "rho_max"]
    assert list(rho_max.get_ydata()) == [0.05, 0.05]
    (shade,) = [c for c in ax.collections if c.get_label() == "clipped: rho_t = rho_max"]
    (path,) = shade.get_paths()  # every step clipped: one stretch over both epochs, half a step beyond each end
    assert (path.vertices[:, 0].min(), path.vertices[:, 0].max()) == pytest.approx((-0.125, 1.875))
