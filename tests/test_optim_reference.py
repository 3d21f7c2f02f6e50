"""SGD, SAM, LE-SAM and LE-SAM+ step for step against a reference written from the formulas."""

import pytest
import torch
from torch.func import functional_call, grad

from lesam.optim import LESAM, SAM, Plain

LR, MOMENTUM, WD = 0.1, 0.9, 5e-4


def make_problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    batches = [(torch.randn(12, 6, dtype=torch.float64), torch.randint(0, 3, (12,))) for _ in range(5)]
    return model, batches


def loss_fn(model, params, x, y):
    return torch.nn.functional.cross_entropy(functional_call(model, params, (x,)), y)


def reference(model, batches, method, rho=0.05, delta=0.3, rho_max=None, alpha=0.0, eps=1e-12):
    """The update rule written out: perturb by e, descend with SGD (momentum, weight decay)."""
    w = {k: v.detach().clone() for k, v in model.named_parameters()}
    buf = None
    for x, y in batches:
        g = grad(lambda p: loss_fn(model, p, x, y))(w)
        if method == "sgd":
            d = g
        else:
            norm = torch.sqrt(sum((t**2).sum() for t in g.values()))
            radius = rho if method == "sam" else delta / (norm + eps)
            if rho_max is not None:
                radius = min(radius, rho_max)
            g_adv = grad(lambda p: loss_fn(model, p, x, y))({k: w[k] + radius * g[k] / (norm + eps) for k in w})
            d = {k: (1 + alpha) * g_adv[k] - alpha * g[k] for k in w}
        d = {k: d[k] + WD * w[k] for k in w}
        buf = d if buf is None else {k: MOMENTUM * buf[k] + d[k] for k in w}
        w = {k: w[k] - LR * buf[k] for k in w}
    return w


def optimized(model, batches, cls, **kwargs):
    opt = cls(model.parameters(), torch.optim.SGD, lr=LR, momentum=MOMENTUM, weight_decay=WD, fused=True, **kwargs)
    for x, y in batches:

        def closure():
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.zero_grad()
        opt.step(closure)
    return dict(model.named_parameters())


CASES = [
    ("sgd", Plain, {}, {}),
    ("sam", SAM, {"rho": 0.05}, {"rho": 0.05}),
    ("lesam", LESAM, {"delta": 0.3}, {"delta": 0.3}),
    ("lesam", LESAM, {"delta": 0.3, "rho_max": 0.2}, {"delta": 0.3, "rho_max": 0.2}),
    ("lesam", LESAM, {"delta": 0.15, "alpha": 0.5}, {"delta": 0.15, "alpha": 0.5}),
]


@pytest.mark.parametrize("method,cls,kwargs,ref_kwargs", CASES)
def test_matches_reference(method, cls, kwargs, ref_kwargs):
    model, batches = make_problem()
    expected = reference(model, batches, method, **ref_kwargs)
    got = optimized(model, batches, cls, **kwargs)
    for name, value in expected.items():
        torch.testing.assert_close(got[name].detach(), value, rtol=1e-10, atol=1e-12)


def test_lesam_plus_differs_from_lesam():
    model, batches = make_problem()
    plain = {k: v.detach().clone() for k, v in optimized(model, batches, LESAM, delta=0.15).items()}
    model, batches = make_problem()
    plus = optimized(model, batches, LESAM, delta=0.15, alpha=0.5)
    assert any(not torch.allclose(plain[k], plus[k].detach()) for k in plain)
