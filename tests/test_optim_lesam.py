"""LE-SAM's perturbation on a loss whose gradient is known exactly."""

import math

import pytest
import torch

from lesam.optim import LESAM, SAM, budget_factor


def linear_problem(direction: list[torch.Tensor]) -> tuple[list[torch.nn.Parameter], callable]:
    """Parameters w and a loss sum(w * c) whose gradient is c whatever w is."""
    params = [torch.nn.Parameter(torch.randn_like(c)) for c in direction]

    def closure():
        loss = sum((p * c).sum() for p, c in zip(params, direction, strict=False))
        loss.backward()
        return loss

    return params, closure


def perturb(opt_cls, direction, **kwargs):
    """Run first_step once; return the gradient and the perturbation e = w' - w."""
    params, closure = linear_problem(direction)
    before = [p.detach().clone() for p in params]
    opt = opt_cls(params, torch.optim.SGD, lr=0.1, **kwargs)
    closure()
    opt.first_step()
    e = torch.cat([(p.detach() - b).flatten() for p, b in zip(params, before, strict=False)])
    g = torch.cat([c.flatten() for c in direction])
    return g.double(), e.double(), opt


@pytest.mark.parametrize("scale", [1e-3, 0.2, 1.0, 30.0])
def test_radius_spends_the_budget(scale):
    torch.manual_seed(0)
    direction = [torch.randn(7, 3) * scale, torch.randn(5) * scale]
    g, e, opt = perturb(LESAM, direction, delta=0.35, rho_max=None)
    assert e.norm().item() == pytest.approx(0.35 / g.norm().item(), rel=1e-5)
    assert torch.dot(g, e).item() == pytest.approx(0.35, rel=1e-5)
    assert torch.nn.functional.cosine_similarity(g, e, dim=0).item() == pytest.approx(1.0, abs=1e-6)
    assert opt.last_rho.item() == pytest.approx(0.35 / g.norm().item(), rel=1e-5)


@pytest.mark.parametrize("scale", [1e-3, 0.5, 10.0])
def test_radius_is_clipped_to_rho_max(scale):
    torch.manual_seed(1)
    direction = [torch.randn(4, 4) * scale]
    g, e, opt = perturb(LESAM, direction, delta=0.35, rho_max=0.4)
    expected = min(0.35 / g.norm().item(), 0.4)
    assert e.norm().item() == pytest.approx(expected, rel=1e-5)
    assert opt.last_rho.item() == pytest.approx(expected, rel=1e-5)
    assert torch.nn.functional.cosine_similarity(g, e, dim=0).item() == pytest.approx(1.0, abs=1e-6)


def test_zero_gradient_gives_zero_perturbation_and_finite_radius():
    g, e, opt = perturb(LESAM, [torch.zeros(3, 3)], delta=0.35)
    assert torch.equal(e, torch.zeros_like(e))
    assert math.isfinite(opt.last_rho.item())


def test_sam_radius_is_fixed():
    torch.manual_seed(2)
    g, e, opt = perturb(SAM, [torch.randn(6) * 17], rho=0.05)
    assert e.norm().item() == pytest.approx(0.05, rel=1e-5)
    assert torch.nn.functional.cosine_similarity(g, e, dim=0).item() == pytest.approx(1.0, abs=1e-6)


def test_adaptive_lesam_keeps_the_first_order_increase_at_delta():
    torch.manual_seed(3)
    g, e, _ = perturb(LESAM, [torch.randn(5, 5), torch.randn(5)], delta=0.3, adaptive=True)
    assert torch.dot(g, e).item() == pytest.approx(0.3, rel=1e-5)


def test_budget_schedule_boundaries():
    kwargs = dict(epochs=200, warmup_epochs=10, anneal_start_epoch=160)
    assert budget_factor(0, **kwargs) == 0.0
    assert budget_factor(5, **kwargs) == pytest.approx(0.5)
    assert budget_factor(10, **kwargs) == 1.0
    assert budget_factor(160, **kwargs) == 1.0
    assert budget_factor(180, **kwargs) == pytest.approx(0.5)
    assert budget_factor(200, **kwargs) == pytest.approx(0.0, abs=1e-12)
    assert budget_factor(50, epochs=200) == 1.0
    assert budget_factor(159.9, epochs=200, start_epoch=160) == 0.0
    assert budget_factor(160, epochs=200, start_epoch=160) == 1.0


def test_budget_multiplies_delta():
    torch.manual_seed(4)
    params, closure = linear_problem([torch.randn(8)])
    opt = LESAM(params, torch.optim.SGD, delta=0.4, lr=0.1)
    opt.perturb_scale = 0.25
    closure()
    norm = params[0].grad.norm()
    opt.first_step()
    assert opt.last_rho.item() == pytest.approx(0.1 / norm.item(), rel=1e-5)


@pytest.mark.parametrize("plus_form,w_after", [("paper", -0.375), ("authors", 0.75)])
def test_lesam_plus_descends_along_the_gradient_of_its_form(plus_form, w_after):
    """L(w) = w^2 / 2 at w = 2, delta 0.5, alpha 0.5, plain SGD with lr 1, by hand: g = 2, rho_t = 0.5 / 2,
    e = 0.25, g_adv = L'(2.25) = 2.25; the paper's (1 + alpha) g_adv - alpha g = 3.375 - 1 = 2.375 steps to
    -0.375, the authors' code's g_adv - alpha g = 1.25 to 0.75."""
    w = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = LESAM([w], torch.optim.SGD, delta=0.5, rho_max=None, alpha=0.5, plus_form=plus_form, lr=1.0)

    def closure():
        loss = 0.5 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert w.item() == pytest.approx(w_after, rel=1e-9)


def test_an_unknown_lesam_plus_form_is_refused():
    with pytest.raises(ValueError, match="plus_form must be one of paper, authors"):
        LESAM([torch.nn.Parameter(torch.zeros(2))], torch.optim.SGD, alpha=0.5, plus_form="code", lr=0.1)
