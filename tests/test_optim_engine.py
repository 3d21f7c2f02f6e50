"""The engine's contracts: exact restore, state_dict, no host sync, loss scaling and skipped steps."""

import copy
from contextlib import nullcontext

import pytest
import torch

from conftest import compose_config
from lesam.methods import Batch
from lesam.methods.closure import BatchClosure
from lesam.optim import LESAM, OPTIMIZERS, SAM, LossScaler, Plain, build_optimizer


def problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))
    return model, x, y


def closure_for(model, x, y, scale=1.0):
    def closure():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        (loss * scale).backward()
        return loss.detach()

    return closure


def make(cls, model, **kwargs):
    return cls(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=5e-4, fused=True, **kwargs)


@pytest.mark.parametrize(
    "cls,kwargs", [(SAM, {"rho": 0.5}), (LESAM, {"delta": 0.5}), (LESAM, {"delta": 0.5, "alpha": 0.5})]
)
def test_restore_is_bitwise(cls, kwargs):
    model, x, y = problem()
    opt = make(cls, model, **kwargs)
    closure = closure_for(model, x, y)
    for _ in range(3):  # also after momentum has built up
        opt.zero_grad()
        closure()
        before = [p.detach().clone() for p in model.parameters()]
        opt.first_step(zero_grad=True)
        assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=False))
        closure()
        seen = {}
        base_step = opt.base_optimizer.step
        opt.base_optimizer.step = lambda: seen.setdefault("w", [p.detach().clone() for p in model.parameters()])
        opt.second_step()
        opt.base_optimizer.step = base_step
        for p, b in zip(seen["w"], before, strict=False):
            assert torch.equal(p.view(torch.int32), b.view(torch.int32))
        opt.base_optimizer.step()


def test_state_dict_holds_the_base_state_and_resumes_identically():
    model, x, y = problem()
    opt = make(LESAM, model, delta=0.3)
    for _ in range(2):
        opt.zero_grad()
        opt.step(closure_for(model, x, y))
    state = copy.deepcopy(opt.state_dict())  # as if saved to disk: no tensor shared with opt
    assert all("momentum_buffer" in s for s in state["state"].values())
    twin, _, _ = problem(seed=1)
    twin.load_state_dict(model.state_dict())
    twin_opt = make(LESAM, twin, delta=0.3)
    twin_opt.load_state_dict(state)
    assert twin_opt.param_groups is twin_opt.base_optimizer.param_groups
    for m, o in ((model, opt), (twin, twin_opt)):
        o.zero_grad()
        o.step(closure_for(m, x, y))
    for a, b in zip(model.parameters(), twin.parameters(), strict=False):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cls,kwargs", [(Plain, {}), (SAM, {}), (LESAM, {"rho_max": 0.4}), (LESAM, {"alpha": 0.5})])
def test_step_never_reads_a_value_back_to_the_host(cls, kwargs, monkeypatch):
    model, x, y = problem()
    opt = make(cls, model, **kwargs)
    opt.max_grad_norm = 1.0
    closure = closure_for(model, x, y)
    opt.step(closure)  # lazily allocated buffers

    def forbidden(*args, **kw):
        raise AssertionError("host sync inside a step")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    opt.zero_grad()
    opt.step(closure)


def test_loss_scaling_gives_the_unscaled_result():
    results = []
    for scaler in (None, LossScaler("cpu", init_scale=2.0**10)):
        model, x, y = problem()
        opt = make(LESAM, model, delta=0.3)
        opt.loss_scaler = scaler
        for _ in range(3):
            opt.zero_grad()
            opt.step(closure_for(model, x, y, scale=scaler.scale_value.item() if scaler else 1.0))
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_non_finite_step_is_skipped_and_counted():
    model, x, y = problem()
    opt = make(LESAM, model, delta=0.3)
    scaler = opt.loss_scaler = LossScaler("cpu", init_scale=8.0)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step(closure_for(model, x, y, scale=float("inf")))
    for p, b in zip(model.parameters(), before, strict=False):
        assert torch.equal(p, b)
    assert opt.skipped_steps.item() == 1
    assert scaler.scale_value.item() == 4.0
    opt.zero_grad()
    opt.step(closure_for(model, x, y, scale=4.0))
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=False))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert opt.skipped_steps.item() == 1


def float64_loss(model, batch, autocast):
    """Cross-entropy of the logits as they are (float64), and the logits."""
    logits = model(batch.inputs)
    return torch.nn.functional.cross_entropy(logits, batch.labels), logits


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("made", ["under_default_float64", "converted_with_double"])
def test_every_optimizer_steps_a_float64_model(name, made):
    """A float64 model, made under torch.set_default_dtype(torch.float64) or converted, trains with every optimizer."""
    cfg = compose_config([f"optimizer={name}"]).optimizer
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if made == "under_default_float64" else default)
    try:
        model, x, y = problem()
        model, x = model.double(), x.double()
        opt = build_optimizer(cfg, model)
        before = [p.detach().clone() for p in model.parameters()]
        for _ in range(3):
            opt.zero_grad()
            opt.step(BatchClosure(model, Batch(x, y), nullcontext(), float64_loss))
    finally:
        torch.set_default_dtype(default)
    assert all(p.dtype == torch.float64 and torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    assert opt.skipped_steps.item() == 0
