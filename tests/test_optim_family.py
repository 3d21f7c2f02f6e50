"""The SAM family: each method's defining property, and the engine's contracts for each of them."""

import copy
from contextlib import contextmanager, nullcontext

import pytest
import torch
from capture_check import HostReads

from lesam.methods import Batch
from lesam.methods.closure import BatchClosure
from lesam.optim import ASAM, ESAM, FSAM, GSAM, LESAM, MSAM, SAM, SSAM, EigenSAM, global_norm

BASE = dict(lr=0.1, momentum=0.9, weight_decay=5e-4, fused=True)
FAMILY = [
    (ASAM, {}),
    (ESAM, {"beta": 0.5, "gamma": 0.5}),
    (FSAM, {}),
    (EigenSAM, {"freq": 2, "power_iters": 2}),
    (GSAM, {"alpha": 0.3}),
    (SSAM, {}),
    (MSAM, {}),
]
IDS = [cls.__name__ for cls, _ in FAMILY]


def problem(seed=0):
    """A small CNN with BatchNorm and a batch of 16 images."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, bias=False),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 3),
    )
    return model, torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))


def make(cls, model, **kwargs):
    return cls(list(model.named_parameters()), torch.optim.SGD, **BASE, **kwargs)


def cross_entropy(model, batch, autocast):
    """ERM's loss: the mean cross-entropy and the logits."""
    with autocast:
        logits = model(batch.inputs)
    return torch.nn.functional.cross_entropy(logits.float(), batch.labels), logits


def closure(model, x, y):
    return BatchClosure(model, Batch(x, y), nullcontext(), cross_entropy)


def flat(tensors):
    return torch.cat([t.detach().flatten() for t in tensors]).double()


def perturb_once(opt, model, x, y):
    """Run the first pass and first_step; return g and e = w' - w, flattened."""
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    closure(model, x, y)()
    g = flat(p.grad for p in model.parameters())
    opt.first_step()
    return g, flat(p - b for p, b in zip(model.parameters(), before, strict=True))


# ---- each method's defining property -----------------------------------------------------


def bias_free_net():
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8, bias=False), torch.nn.ReLU(), torch.nn.Linear(8, 3, bias=False)
    ).double()


@pytest.mark.parametrize("cls,invariant", [(ASAM, True), (SAM, False)])
def test_asam_perturbation_is_invariant_to_rescaling_the_neurons(cls, invariant):
    """Scaling a ReLU unit's input weights by c and its output weights by 1/c keeps the function;
    ASAM's perturbed loss stays the same, SAM's does not."""
    x, y = torch.randn(32, 5, dtype=torch.float64), torch.randint(0, 3, (32,))
    scale = torch.rand(8, dtype=torch.float64) * 10 + 0.1
    losses = []
    for c in (torch.ones(8, dtype=torch.float64), scale):
        model = bias_free_net()
        with torch.no_grad():
            model[0].weight.mul_(c[:, None])
            model[2].weight.div_(c[None, :])
        kwargs = {"rho": 0.5, "eta": 0.0} if cls is ASAM else {"rho": 0.5}
        opt = make(cls, model, **kwargs)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.first_step()
        losses.append(torch.nn.functional.cross_entropy(model(x), y).item())
    assert (losses[0] == pytest.approx(losses[1], rel=1e-9)) == invariant, losses


def test_asam_scales_weights_but_not_biases():
    torch.manual_seed(2)
    model = torch.nn.Linear(4, 3)
    opt = make(ASAM, model, rho=0.5, eta=0.01)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    gw, gb = model.weight.grad.clone(), model.bias.grad.clone()
    opt.first_step()
    t = w.abs() + 0.01
    norm = torch.sqrt(((t * gw) ** 2).sum() + (gb**2).sum())
    torch.testing.assert_close(model.weight.detach() - w, 0.5 * t**2 * gw / norm)
    torch.testing.assert_close(model.bias.detach() - b, 0.5 * gb / norm)


def test_adaptive_lesam_spends_delta_with_named_weights_and_biases():
    model, x, y = problem()
    opt = make(LESAM, model, delta=0.3, rho_max=None, adaptive=True)
    g, e = perturb_once(opt, model, x, y)
    assert torch.dot(g, e).item() == pytest.approx(0.3, rel=1e-5)


class RecordingClosure(BatchClosure):
    """A BatchClosure that remembers the samples each pass ran on."""

    def __call__(self, samples=None):
        self.samples = samples
        return super().__call__(samples)


def test_esam_second_pass_runs_on_the_sharpest_share_of_the_batch():
    model, x, y = problem()
    opt = make(ESAM, model, rho=0.5, beta=1.0, gamma=0.25)
    sizes = []
    model.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    batch = RecordingClosure(model, Batch(x, y), nullcontext(), cross_entropy)
    opt.zero_grad()
    batch()
    opt.first_step(zero_grad=True)
    opt.perturbed_pass(batch)
    assert sizes == [16, 16, 4]  # the pass at w, the loss increases at w + e, the sharpest quarter
    increase = batch.sample_losses() - batch.sample_losses(batch.logits)
    assert set(batch.samples.tolist()) == set(torch.topk(increase, 4).indices.tolist())


def test_esam_perturbs_a_random_share_of_tensors_by_rho_over_beta():
    model, x, y = problem()
    opt = make(ESAM, model, rho=0.2, beta=0.5, gamma=1.0)
    shares = []
    for _ in range(20):
        before = [p.detach().clone() for p in model.parameters()]
        g, e = perturb_once(opt, model, x, y)
        moved = [not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True)]
        shares.append(sum(moved) / len(moved))
        if any(moved):
            assert e.norm().item() == pytest.approx(0.2 / 0.5, rel=1e-5)
        opt.second_step()  # restores w (and takes a step)
    assert 0 < sum(shares) / len(shares) < 1  # some tensors perturbed, not all


def linear_closure(params, direction):
    def run():
        loss = sum((p * c).sum() for p, c in zip(params, direction, strict=True))
        loss.backward()
        return loss

    return run


def test_fsam_perturbs_along_g_minus_the_previous_ema():
    torch.manual_seed(3)
    params = [torch.nn.Parameter(torch.randn(6)), torch.nn.Parameter(torch.randn(2, 3))]
    opt = FSAM(params, torch.optim.SGD, lr=0.0, rho=0.1, sigma=0.7, lmbda=0.9)
    grads = [[torch.randn_like(p) for p in params] for _ in range(3)]
    ema = None
    for step, g in enumerate(grads):
        before = flat(params)
        opt.zero_grad()
        linear_closure(params, g)()
        opt.first_step()
        e = flat(params) - before
        d = flat(g) if ema is None else flat(g) - 0.7 * ema
        torch.testing.assert_close(e, 0.1 * d / d.norm(), rtol=1e-5, atol=1e-7, msg=f"step {step}")
        ema = flat(g) if ema is None else 0.9 * ema + 0.1 * flat(g)
        torch.testing.assert_close(flat(opt.state[p]["fsam_ema"] for p in params), ema, rtol=1e-5, atol=1e-7)
        opt.second_step()


class Quadratic:
    """L(w) = 0.5 w^T H w, with H known, behind the closure interface Eigen-SAM needs."""

    def __init__(self, w, hessian):
        self.w, self.hessian = w, hessian

    @contextmanager
    def hessian_products(self, params):
        yield lambda vectors: [self.hessian @ vectors[0]]

    def __call__(self):
        with torch.enable_grad():
            loss = 0.5 * self.w @ self.hessian @ self.w
        loss.backward()
        return loss.detach()


def test_eigensam_vector_converges_to_the_top_eigenvector():
    torch.manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64))
    eigenvalues = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1, -0.5, -1.0], dtype=torch.float64)
    hessian = q @ torch.diag(eigenvalues) @ q.T
    w = torch.nn.Parameter(torch.randn(10, dtype=torch.float64))
    opt = EigenSAM([w], torch.optim.SGD, lr=0.01, rho=0.05, alpha=0.2, freq=1, power_iters=3)
    for _ in range(10):
        opt.zero_grad()
        opt.step(Quadratic(w, hessian))
    v = opt.state[w]["eigenvector"]
    assert abs(torch.dot(v, q[:, 0]).item()) > 1 - 1e-9
    assert v.norm().item() == pytest.approx(1.0)


def test_eigensam_perturbation_adds_the_eigenvector_part_orthogonal_to_g():
    torch.manual_seed(5)
    hessian = torch.diag(torch.tensor([4.0, 1.0, 0.5], dtype=torch.float64))
    w = torch.nn.Parameter(torch.tensor([0.3, 1.0, -2.0], dtype=torch.float64))
    opt = EigenSAM([w], torch.optim.SGD, lr=0.01, rho=0.05, alpha=0.2)
    opt.state[w]["eigenvector"] = v = torch.tensor([0.0, 0.6, 0.8], dtype=torch.float64)
    before = w.detach().clone()
    Quadratic(w, hessian)()
    g = w.grad.clone()
    opt.first_step()
    u = g / g.norm()
    expected = 0.05 * (u + 0.2 * torch.sign(g @ v) * (v - (u @ v) * u))
    torch.testing.assert_close(w.detach() - before, expected)


def test_gsam_update_differs_from_sam_orthogonally_to_the_perturbed_gradient():
    updates, g_adv = [], None
    for cls, kwargs in ((SAM, {"rho": 0.3}), (GSAM, {"rho_max": 0.3, "rho_min": 0.3, "alpha": 0.5})):
        model, x, y = problem()
        model, x = model.double(), x.double()
        opt = cls(model.parameters(), torch.optim.SGD, lr=0.1, **kwargs)
        before = flat(model.parameters())
        opt.zero_grad()
        batch = closure(model, x, y)
        batch()
        opt.first_step(zero_grad=True)
        batch()
        g_adv = flat(p.grad for p in model.parameters())
        opt.second_step()
        updates.append(flat(model.parameters()) - before)
    difference = updates[1] - updates[0]
    assert difference.norm() > 1e-3 * updates[0].norm()
    assert abs(torch.dot(difference, g_adv).item()) < 1e-9 * difference.norm().item() * g_adv.norm().item()


def test_gsam_radius_follows_the_learning_rate():
    model, x, y = problem()
    opt = make(GSAM, model, rho_max=0.1, rho_min=0.02)
    for factor, rho in ((1.0, 0.1), (0.5, 0.06), (0.0, 0.02)):
        opt.param_groups[0]["lr"] = opt.param_groups[0]["initial_lr"] * factor
        g, e = perturb_once(opt, model, x, y)
        assert e.norm().item() == pytest.approx(rho, rel=1e-5)
        opt.second_step()


def test_ssam_descends_with_the_norm_of_the_clean_gradient():
    model, x, y = problem()
    opt = make(SSAM, model, rho=0.5)
    seen = {}
    opt.base_optimizer.step = lambda: seen.setdefault("grad", flat(p.grad for p in model.parameters()))
    batch = closure(model, x, y)
    opt.zero_grad()
    batch()
    g = flat(p.grad for p in model.parameters())
    opt.first_step(zero_grad=True)
    batch()
    g_adv = flat(p.grad for p in model.parameters())
    opt.second_step()
    assert g_adv.norm().item() != pytest.approx(g.norm().item(), rel=1e-3)
    assert seen["grad"].norm().item() == pytest.approx(g.norm().item(), rel=1e-5)
    assert torch.nn.functional.cosine_similarity(seen["grad"], g_adv, dim=0).item() == pytest.approx(1.0)


def test_msam_takes_one_pass_and_follows_the_official_update():
    """One forward-backward per step, and w(t+1) = w - lr * v(t+1), v(t+1) = mu v + grad at w - rho v / ||v||."""
    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    batches = [(torch.randn(12, 6, dtype=torch.float64), torch.randint(0, 3, (12,))) for _ in range(4)]
    lr, mu, wd, rho = 0.1, 0.9, 5e-4, 0.5
    w = [p.detach().clone() for p in model.parameters()]
    reference = copy.deepcopy(model)
    opt = MSAM(model.parameters(), torch.optim.SGD, lr=lr, momentum=mu, weight_decay=wd, fused=True, rho=rho)
    v = None
    for x, y in batches:
        passes = []

        def run(x=x, y=y, passes=passes):
            passes.append(1)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.zero_grad()
        opt.step(run)
        assert len(passes) == 1
        shift = [0 * t for t in w] if v is None else [-rho * t / global_norm(v) for t in v]
        with torch.no_grad():
            for p, t, s in zip(reference.parameters(), w, shift, strict=True):
                p.copy_(t + s)
        reference.zero_grad()
        torch.nn.functional.cross_entropy(reference(x), y).backward()
        d = [p.grad + wd * t for p, t in zip(reference.parameters(), w, strict=True)]
        v = d if v is None else [mu * a + b for a, b in zip(v, d, strict=True)]
        w = [t - lr * a for t, a in zip(w, v, strict=True)]
        for p, t in zip(model.parameters(), w, strict=True):
            torch.testing.assert_close(p.detach(), t, rtol=1e-10, atol=1e-12)


# ---- the engine's contracts for each method ---------------------------------------------------


@pytest.mark.parametrize("cls,kwargs", FAMILY, ids=IDS)
def test_restore_is_bitwise(cls, kwargs):
    model, x, y = problem()
    opt = make(cls, model, **kwargs)
    for _ in range(3):  # the restore happens inside step; the base step sees w exactly
        before = [p.detach().clone() for p in model.parameters()]
        seen = {}
        base_step = opt.base_optimizer.step
        opt.base_optimizer.step = lambda: seen.setdefault("w", [p.detach().clone() for p in model.parameters()])
        opt.zero_grad()
        opt.step(closure(model, x, y))
        opt.base_optimizer.step = base_step
        for p, b in zip(seen["w"], before, strict=True):
            assert torch.equal(p.view(torch.int32), b.view(torch.int32))
        opt.base_optimizer.step()


@pytest.mark.parametrize("cls,kwargs", FAMILY, ids=IDS)
def test_step_never_reads_a_value_back_to_the_host(cls, kwargs):
    model, x, y = problem()
    opt = make(cls, model, **kwargs)
    opt.max_grad_norm = 1.0
    for _ in range(2):  # lazily allocated buffers, the momentum buffer, the first eigenvector
        opt.zero_grad()
        opt.step(closure(model, x, y))

    for _ in range(2):  # Eigen-SAM (freq 2): one step with the power iteration, one without
        opt.zero_grad()
        with HostReads():
            opt.step(closure(model, x, y))


@pytest.mark.parametrize("cls,kwargs", FAMILY, ids=IDS)
def test_state_dict_resumes_identically(cls, kwargs):
    model, x, y = problem()
    opt = make(cls, model, **kwargs)
    for _ in range(3):
        opt.zero_grad()
        opt.step(closure(model, x, y))
    state = copy.deepcopy(opt.state_dict())  # as if saved to disk: nothing shared with opt
    twin, _, _ = problem(seed=1)
    twin.load_state_dict(model.state_dict())
    twin_opt = make(cls, twin, **kwargs)
    twin_opt.load_state_dict(state)
    for _ in range(3):  # long enough for ESAM's mask and Eigen-SAM's schedule to matter
        for m, o in ((model, opt), (twin, twin_opt)):
            o.zero_grad()
            o.step(closure(m, x, y))
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("normalize,e,rho", [(False, [0.15, 0.2], 0.25), (True, [0.03, 0.04], 0.05)])
def test_ssam_perturbs_by_rho_g_unless_normalised(normalize, e, rho):
    """g = (3, 4), rho 0.05: the official code's e = rho g = (0.15, 0.2), of length 0.25; normalised, SAM's
    e = rho g / ||g|| = (0.03, 0.04)."""
    w = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    opt = SSAM([w], torch.optim.SGD, rho=0.05, normalize_perturbation=normalize, lr=0.1)
    w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    opt.first_step()
    torch.testing.assert_close(w.detach() - torch.tensor([1.0, -1.0], dtype=torch.float64), torch.tensor(e).double())
    assert opt.last_rho.item() == pytest.approx(rho, rel=1e-9)
