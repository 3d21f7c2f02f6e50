"""Gradient accumulation: k micro-batches per pass end where one pass over the whole batch ends, for every method."""

import functools
from contextlib import contextmanager, nullcontext

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, compose_config, smoke_overrides
from lesam.core.errors import UserError
from lesam.data import build_data
from lesam.engine.fast_path import check_capturable
from lesam.engine.run import run
from lesam.engine.validate import validate
from lesam.methods import Batch, Method, build_method
from lesam.methods.closure import BatchClosure, split_sizes
from lesam.models import build_model
from lesam.models.small import MLP
from lesam.optim import LossScaler, build_optimizer

OPTIMIZERS = ["sgd", "sam", "lesam", "lesam_plus", "asam", "esam", "fsam", "eigensam", "gsam", "ssam", "msam"]
SETTINGS = {"eigensam": ["optimizer.freq=2"]}  # the power iteration runs every other step
STEPS = 4


@functools.cache
def erm():
    """ERM as the default config builds it (its loss keeps float64 logits in float64)."""
    return Method(composed(), None)


def erm_loss(model, batch, autocast):
    return erm().loss(model, batch, autocast)


@functools.cache
def composed(*overrides: str):
    return compose_config(list(overrides))


def optimizer_for(name: str, model: torch.nn.Module):
    return build_optimizer(composed(f"optimizer={name}", *SETTINGS.get(name, [])).optimizer, model)


def train_float64(name: str, micro_batches: int, loss_scaler: LossScaler | None = None) -> dict:
    """STEPS steps of optimizer `name` on a float64 MLP, each pass in `micro_batches` micro-batches."""
    torch.manual_seed(0)
    model = MLP(num_classes=5, in_features=12, hidden=[16, 16]).double()
    optimizer = optimizer_for(name, model)
    optimizer.loss_scaler = loss_scaler
    loss = erm_loss
    data = torch.Generator().manual_seed(1)
    record = {"losses": [], "logits": []}
    for _ in range(STEPS):
        x, y = torch.randn(16, 12, generator=data, dtype=torch.float64), torch.randint(5, (16,), generator=data)
        closure = BatchClosure(model, Batch(x, y), nullcontext(), loss, loss_scaler, micro_batches=micro_batches)
        optimizer.zero_grad(set_to_none=True)
        record["losses"].append(optimizer.step(closure))
        record["logits"].append(closure.logits)
    return record | {"weights": torch.cat([p.detach().flatten() for p in model.parameters()])}


def largest_difference(a: dict, b: dict) -> float:
    """The largest absolute difference between two records' weights, losses and logits."""
    stacked = [(torch.stack(a[k]), torch.stack(b[k])) if isinstance(a[k], list) else (a[k], b[k]) for k in a]
    return max((x - y).abs().max().item() for x, y in stacked)


@pytest.mark.parametrize("micro_batches", [4, 3])  # 16 samples: four of 4, or 6 + 5 + 5 (size-weighted)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_micro_batches_end_with_the_weights_of_the_whole_batch_in_float64(name, micro_batches):
    whole, parts = train_float64(name, 1), train_float64(name, micro_batches)
    difference = largest_difference(whole, parts)
    print(f"{name} k={micro_batches}: max |difference| {difference:.2e}")
    assert difference <= 1e-10


def test_fp16_loss_scaling_scales_each_micro_batch_and_unscales_once_per_pass():
    """A power-of-two scale is exact: scaled micro-batches end where the unscaled whole batch ends."""
    scaled = train_float64("lesam", 4, LossScaler("cpu", init_scale=2.0**10))
    assert largest_difference(train_float64("lesam", 1), scaled) <= 1e-10


def glmc_problem(micro_batches: int) -> dict:
    """STEPS LE-SAM steps of a float64 GLMC network on random paired views."""
    glmc = ["method=glmc", "optimizer=lesam", "model=mlp", "model.hidden=[16]"]
    cfg = composed("dataset=synthetic", "dataset.image_size=8", "dataset.num_train=32", *glmc)
    data = build_data(cfg.dataset)
    method = build_method(cfg, data)
    torch.manual_seed(0)
    model = method.wrap(build_model(cfg.model, data.num_classes, data.channels, data.image_size)).double()
    optimizer = build_optimizer(cfg.optimizer, model)
    record = {"losses": []}
    for step in range(STEPS):
        torch.manual_seed(10 + step)  # the same pairs, lambda and CutMix box for both runs
        views, labels = torch.randn(16, 4, 3, 8, 8, dtype=torch.float64), torch.randint(10, (16, 2))
        batch = method.batch(views, labels, epoch=50.0)  # alpha between 0 and 1: both heads' losses count
        closure = BatchClosure(model, batch, nullcontext(), method.loss, micro_batches=micro_batches)
        optimizer.zero_grad(set_to_none=True)
        record["losses"].append(optimizer.step(closure))
    return record | {"weights": torch.cat([p.detach().flatten() for p in model.parameters()])}


def test_glmc_mixes_the_whole_batch_and_its_loss_splits_exactly_in_float64():
    difference = largest_difference(glmc_problem(1), glmc_problem(4))
    print(f"glmc k=4: max |difference| {difference:.2e}")
    assert difference <= 1e-10


def bn_net():
    torch.manual_seed(2)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_hessian_products_are_the_whole_batch_s_with_batchnorm_in_eval_mode():
    model = bn_net().double()
    model(torch.randn(32, 6, dtype=torch.float64))  # running statistics that are not the defaults
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(3, (16,))
    params = list(model.parameters())
    v = [torch.randn_like(p) for p in params]
    products = []
    for k in (1, 4):
        closure = BatchClosure(model, Batch(x, y), nullcontext(), erm_loss, micro_batches=k)
        with closure.hessian_products(params) as hessian_times:
            products.append(torch.cat([t.flatten() for t in hessian_times(v)]))
            torch.testing.assert_close(torch.cat([t.flatten() for t in hessian_times(v)]), products[-1])
        assert model.training
    assert (products[0] - products[1]).abs().max().item() <= 1e-12
    assert products[0].norm() > 0


def test_esam_selects_from_the_losses_of_the_whole_batch():
    model = MLP(num_classes=3, in_features=6, hidden=[8]).double()
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(3, (16,))
    sizes = []
    model.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    closure = BatchClosure(model, Batch(x, y), nullcontext(), erm_loss, micro_batches=4)
    losses = closure.sample_losses()
    assert sizes == [4, 4, 4, 4] and losses.shape == (16,)
    torch.testing.assert_close(losses, F.cross_entropy(model(x), y, reduction="none"), rtol=0, atol=1e-12)
    sizes.clear()
    closure(torch.tensor([0, 3, 5, 6, 9, 12]))
    assert sizes == [2, 2, 1, 1]  # six selected samples in four micro-batches


class Recorder:
    """A context factory that counts how many micro-batches ran inside it."""

    def __init__(self):
        self.entered = 0

    @contextmanager
    def __call__(self):
        self.entered += 1
        yield


def test_every_micro_batch_but_the_last_runs_without_sync_and_the_first_pass_as_a_whole():
    model = MLP(num_classes=3, in_features=6, hidden=[8])
    no_sync, first_pass = Recorder(), Recorder()
    batch = Batch(torch.randn(10, 6), torch.randint(3, (10,)))
    closure = BatchClosure(model, batch, nullcontext(), erm_loss, micro_batches=4,
                           no_sync=no_sync, first_pass=first_pass)  # fmt: skip
    closure()
    closure()
    assert (no_sync.entered, first_pass.entered) == (6, 1)
    assert closure.logits.shape == (10, 3)
    assert split_sizes(10, 4) == [3, 3, 2, 2] and split_sizes(3, 4) == [1, 1, 1]


def test_frozen_batchnorm_statistics_hold_for_every_micro_batch_of_the_perturbed_pass():
    model = bn_net()
    batch = Batch(torch.randn(16, 6), torch.randint(3, (16,)))
    closure = BatchClosure(model, batch, nullcontext(), erm_loss, freeze_bn=True,
                           micro_batches=4)  # fmt: skip
    closure()
    after_first = model[1].running_mean.clone()
    assert not torch.equal(after_first, torch.zeros(8))
    closure()
    assert torch.equal(model[1].running_mean, after_first)


# ---- whole runs, float32 ---------------------------------------------------------------------

RUNS = [[f"optimizer={name}", *SETTINGS.get(name, [])] for name in OPTIMIZERS] + [
    ["method=glmc", "optimizer=lesam"],
    ["method=ermpp", "optimizer=lesam", "method.linear_probe_steps=2", "method.average_start_step=2"],
]
RUN_IDS = OPTIMIZERS + ["glmc", "ermpp"]


def trained(tmp_path, overrides: list[str], micro_batches: int) -> tuple[dict, dict]:
    """The final weights (and tested weights) and result of a short run on synthetic data."""
    extra = ["model=mlp", *TINY["mlp"], "trainer.epochs=2", f"trainer.accumulation_steps={micro_batches}", *overrides]
    cfg = compose_config(smoke_overrides(tmp_path, *extra))
    folder = tmp_path / f"k{micro_batches}"
    final = run(cfg, folder=folder)
    state = torch.load(folder / "last.pt", weights_only=True)["trainer"]
    tested = state["method"].get("eval_model", {})
    return {**state["model"], **{f"tested.{k}": v for k, v in tested.items()}}, final


@pytest.mark.parametrize("overrides", RUNS, ids=RUN_IDS)
def test_a_run_with_four_micro_batches_ends_with_the_weights_of_one_in_float32(overrides, tmp_path):
    (whole, whole_final), (parts, parts_final) = trained(tmp_path, overrides, 1), trained(tmp_path, overrides, 4)
    assert whole.keys() == parts.keys()
    difference = max((whole[k] - parts[k]).abs().max().item() for k in whole)
    print(f"{overrides[0]}: max |difference| {difference:.2e}")
    assert difference <= 1e-5
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert parts_final[key] == pytest.approx(whole_final[key], rel=1e-5, abs=1e-5), key


# ---- refusals --------------------------------------------------------------------------------


def test_more_micro_batches_than_samples_per_process_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = compose_config(["trainer.batch_size=16", "trainer.accumulation_steps=9"])
    with pytest.raises(UserError, match="accumulation_steps=9 is more micro-batches than the 8 samples"):
        validate(cfg)
    validate(compose_config(["trainer.batch_size=16", "trainer.accumulation_steps=8"]))


def test_the_captured_step_refuses_micro_batches(tmp_path):
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", "trainer.accumulation_steps=2"))
    model = MLP(num_classes=10, in_features=12)
    optimizer = build_optimizer(cfg.optimizer, model)
    with pytest.raises(UserError, match="trainer.cuda_graph=true: it needs trainer.accumulation_steps=1"):
        check_capturable(cfg, torch.device("cuda"), Method(cfg, None), optimizer)
