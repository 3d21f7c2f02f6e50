"""Each table cell trains with its source's values, `make recipes` shows them with their sources, and the
baselines' official details (Eigen-SAM's refresh, Momentum-SAM's BatchNorm, GLMC's init) hold."""

import copy
import json
import math
import sys
from contextlib import nullcontext

import pytest
import torch
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError

from conftest import TINY, compose_config, error_line, run_command, smoke_overrides, without_hydra
from lesam.core.run_folder import read_lines
from lesam.core.run_id import run_id
from lesam.data import build_data
from lesam.engine.cli import explain
from lesam.engine.run import run
from lesam.engine.trainer import Trainer
from lesam.methods import Batch, build_method
from lesam.methods.closure import BatchClosure
from lesam.models import build_model
from lesam.optim import EigenSAM, build_optimizer
from lesam.report.plan import composer
from lesam.report.recipes import cell_settings, file_sources, recipe_table
from lesam.report.tables import TABLE1, TABLE1_METHODS, TABLES

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CELLS = [  # overrides -> the values their sources give (issue: recipe fidelity)
    *(
        ([f"experiment={d}_{m}", f"optimizer={o}"], {"optimizer.weight_decay": 5e-4})
        for d in ("cifar10", "cifar100")
        for m in ("resnet18", "wrn28_10", "pyramidnet110")
        for o in TABLE1_METHODS
    ),
    (
        ["experiment=cifar100_lt", "dataset.imbalance_factor=100"],
        {
            "method.resample_weighting": 0.0,
            "method.label_weighting": 1.2,
            "method.contrast_weight": 4,
            "schedule.warmup_epochs": 0,
            "dataset.few_shot_max": 20,
        },
    ),
    (
        ["experiment=cifar100_lt", "dataset.imbalance_factor=50", "optimizer=lesam"],
        {"method.resample_weighting": 0.2, "method.label_weighting": 1.2, "method.contrast_weight": 6},
    ),
    *(
        ([f"experiment=cifar100_{m}", f"optimizer={o}"], {"trainer.bn_second_pass": bn})
        for m in ("resnet18", "wrn28_10")
        for o, bn in (("fsam", "freeze"), ("gsam", "freeze"), ("eigensam", "freeze"))
        + (("sam", "update"), ("esam", "update"), ("lesam", "update"))
    ),
    *(([f"experiment={d}_resnet18", "optimizer=asam"], {"optimizer.eta": 0.0}) for d in ("cifar10", "cifar100")),
    (
        ["experiment=cifar10_wrn28_10", "optimizer=gsam"],
        {"optimizer.adaptive": True, "optimizer.rho_max": 2.0, "optimizer.rho_min": 2.0, "optimizer.alpha": 0.4},
    ),
    (
        ["experiment=imagenet_r50", "optimizer=gsam"],
        {"optimizer.adaptive": False, "optimizer.rho_max": 0.04, "optimizer.rho_min": 0.02, "optimizer.alpha": 0.01},
    ),
    (["model=small_cnn", "optimizer=lesam"], {"optimizer.rho_max": 0.05}),
    (["experiment=vit_b16_cifar100"], {"dataset.mean": IMAGENET_MEAN, "dataset.std": IMAGENET_STD}),
]


@pytest.mark.parametrize("overrides,expected", CELLS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_each_cell_resolves_to_its_sources_values(overrides, expected):
    cfg = compose_config(overrides)
    for key, value in expected.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        got = list(node) if isinstance(value, list) else node
        assert got == value, f"{key}: {got!r}, the source says {value!r}"


def test_an_imbalance_factor_without_recipe_values_is_one_line_naming_every_missing_value():
    result = run_command(
        [sys.executable, "train.py", "experiment=cifar100_lt", "dataset.imbalance_factor=7", "debug=smoke"]
    )
    assert error_line(result) == (
        "error: method.contrast_weight, method.resample_weighting, method.label_weighting have recipe values for "
        "dataset.imbalance_factor 100, 50, 10, not for 7; set method.contrast_weight=<value> "
        "method.resample_weighting=<value> method.label_weighting=<value>"
    )


def test_the_recipe_values_set_by_hand_are_not_named():
    cfg = compose_config(["experiment=cifar100_lt", "dataset.imbalance_factor=20", "method.resample_weighting=0.1"])
    with pytest.raises(InterpolationResolutionError) as error:  # OmegaConf wraps the resolver's UserError
        OmegaConf.resolve(cfg)
    assert explain(error.value) == (
        "method.contrast_weight, method.label_weighting have recipe values for dataset.imbalance_factor 100, 50, 10, "
        "not for 20; set method.contrast_weight=<value> method.label_weighting=<value>"
    )


def test_recipes_table1_has_a_row_per_cell_and_names_appendix_f_for_weight_decay():
    result = run_command(
        ["make", "-s", "recipes", "TABLE=table1", "SOURCES=1", f"PY={sys.executable}", "STAMP=Makefile"]
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| dataset |"))
    rows = [line for line in lines if line.startswith("| cifar")]
    assert len(rows) == 2 * 3 * len(TABLE1_METHODS) == len(TABLE1.run_overrides())
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert "weight_decay" in columns and "rho" in columns and "bn_second_pass" in columns
    at = columns.index("weight_decay")
    assert {row.strip("|").split("|")[at].strip() for row in rows} == {"0.0005"}
    sources = lines[lines.index("## Sources") :]
    weight_decay = sources[sources.index("- **weight_decay** (`optimizer.weight_decay`)") + 1]
    assert "appendix F" in weight_decay and "42 of 42" in weight_decay


def test_a_value_set_by_the_tables_cell_names_the_table():
    with composer() as c:
        text = recipe_table(TABLES["table7"], c, sources=True)
    assert "the table's cell (lesam/report/tables.py)" in text  # dataset.imbalance_factor=100|50
    assert "GLMC README.md L107, L109, L111" in text


def test_a_line_source_wins_over_the_files_header(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(
        "# @package _global_\n# source: the header\noptimizer:\n  lr: 0.1\n  rho: 2  # source: a line\n"
        "  eta: 0.0  # assumed: what and why\n"
    )
    assert file_sources(path) == ("the header", {"optimizer.rho": "a line", "optimizer.eta": "assumed: what and why"})


# values no official source gives for ImageNet: each baseline's CIFAR value, marked as assumed (Table 2)
ASSUMED = {"asam": ("rho",), "esam": ("rho", "beta", "gamma"), "fsam": ("rho",), "eigensam": ("rho", "alpha")}


def test_table2_marks_each_value_without_an_imagenet_source_as_assumed():
    with composer() as c:
        cells = {o: cell_settings(c, o) for o in TABLES["table2"].run_overrides()}
        text = recipe_table(TABLES["table2"], c, sources=True)
    for overrides, settings in cells.items():
        optimizer = overrides[-1].removeprefix("optimizer=")
        for key, s in settings.items():
            assumed = key.removeprefix("optimizer.") in ASSUMED.get(optimizer, ()) and key.startswith("optimizer.")
            assert (s.source or "").startswith("assumed: ") == assumed, (overrides, key, s)
            if assumed:
                assert "CIFAR" in s.source and "ImageNet" in s.source  # what was assumed, and why
                assert s.file == f"recipe/dataset_optimizer/imagenet_{optimizer}"
    assert text.count(": assumed: ") == sum(map(len, ASSUMED.values()))  # one line per value, both backbones


def test_table7_lists_every_method_value_whatever_sets_it():
    with composer() as c:
        text = recipe_table(TABLES["table7"], c, sources=True)
    header = next(line for line in text.splitlines() if line.startswith("| dataset |"))
    columns = {c.strip() for c in header.strip("|").split("|")}
    assert {"rho", "delta", "rho_max", "anneal_start_epoch", "label_weighting", "mix_alpha"} <= columns
    assert "  - 0.05: SAM paper (Foret et al. 2021)" in text  # SAM's rho, set by configs/optimizer/sam.yaml
    assert "  - 0.35: paper, appendix F (ResNet-18 table) [optimizer/lesam; 2 of 6]" in text  # LE-SAM's delta


# the training protocol: what the paper fixes for every method of a table (the rule in docs/configs.md)
PROTOCOL = ("dataset.", "trainer.", "schedule.", "method.")
BASE_KEYS = ("lr", "momentum", "weight_decay", "nesterov", "base", "grad_clip")
METHOD_OWN = {"trainer.bn_second_pass"}  # how a method's own step treats BatchNorm: its official code's


def protocol(settings: dict) -> dict:
    """The protocol values of a cell's settings."""
    own = {f"optimizer.{k}" for k in BASE_KEYS}
    return {k: s.value for k, s in settings.items() if (k.startswith(PROTOCOL) or k in own) and k not in METHOD_OWN}


def test_every_method_of_a_cell_family_trains_with_its_shared_protocol():
    families = ["experiment=cifar10_resnet18", "experiment=cifar100_pyramidnet110"]  # per data set and per model
    methods = (*TABLE1_METHODS, "lesam_plus", "gsam", "ssam", "msam")
    with composer() as c:
        for family in families:
            shared = protocol(cell_settings(c, (family, "optimizer=sgd")))
            for method in methods:
                assert protocol(cell_settings(c, (family, f"optimizer={method}"))) == shared, (family, method)


def test_ssam_perturbs_as_its_official_code_and_the_normalised_form_keeps_its_old_run_id():
    cfg = compose_config(["optimizer=ssam"])
    opt = build_optimizer(cfg.optimizer, torch.nn.Linear(2, 2))
    assert cfg.optimizer.normalize_perturbation is False and opt.normalize_perturbation is False
    normalised = compose_config(["optimizer=ssam", "optimizer.normalize_perturbation=true"])
    assert run_id(normalised) == "cifar10-resnet18-ssam-s0-4302cfb6"  # its id before the switch existed
    assert run_id(cfg) != run_id(normalised)


# ---- the baselines' official details -------------------------------------------------------------


def cross_entropy(model, batch, autocast):
    logits = model(batch.inputs)
    return torch.nn.functional.cross_entropy(logits, batch.labels), logits


def test_eigensam_refreshes_at_the_official_batch_indices_and_perturbs_by_rho_g_before():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    opt = EigenSAM(model.parameters(), torch.optim.SGD, lr=0.1, rho=0.05, freq=2, power_iters=2)
    closure = BatchClosure(model, Batch(x, y), nullcontext(), cross_entropy)
    before = [p.detach().clone() for p in model.parameters()]
    closure()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.first_step(zero_grad=True)  # no eigenvector yet: e = rho * g, unnormalised (official first_step)
    for p, b, g in zip(model.parameters(), before, grads, strict=True):
        torch.testing.assert_close(p.detach() - b, 0.05 * g)
    with torch.no_grad():
        torch._foreach_copy_(list(model.parameters()), before)
    opt = EigenSAM(model.parameters(), torch.optim.SGD, lr=0.1, rho=0.05, freq=2, power_iters=2)
    opt.steps_per_epoch = 5  # two short epochs of five batches
    refreshed, estimate = [], opt.estimate_eigenvector
    # begin_step has already counted the step under way, so its index is steps - 1
    opt.estimate_eigenvector = lambda *args: (refreshed.append(opt.steps - 1), estimate(*args))
    for _ in range(10):
        opt.zero_grad()
        opt.step(BatchClosure(model, Batch(x, y), nullcontext(), cross_entropy))
    assert refreshed == [2, 4, 7, 9]  # batch index in its epoch (step % 5) at 2 and 4: `step % freq == 0 and step > 0`


def test_msam_tests_with_batchnorm_statistics_recomputed_at_w(tmp_path, monkeypatch):
    cfg = without_hydra(
        compose_config(smoke_overrides(tmp_path, "model=small_cnn", *TINY["small_cnn"], "optimizer=msam"))
    )
    seen = {}
    recompute = Trainer._recompute_bn_statistics

    def spy(trainer):
        seen["trainer"], seen["before"] = trainer, copy.deepcopy(trainer.model)
        recompute(trainer)
        seen["after"] = copy.deepcopy(trainer.model.state_dict())

    monkeypatch.setattr(Trainer, "_recompute_bn_statistics", spy)
    cfg.trainer.epochs = 2
    final = run(cfg, folder=tmp_path / "run")
    trainer, expected = seen["trainer"], copy.deepcopy(seen["before"]).train()
    trainer._draw_order(1)  # the last epoch's batches, at the weights w the run ended with
    with torch.no_grad():
        for inputs, _ in trainer.train_loader:
            expected(inputs)
    checkpoint = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]["model"]
    moved = False
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(seen["after"][key], value)
        torch.testing.assert_close(checkpoint[key], value)  # what the final test used
        moved |= "running" in key and not torch.equal(value, seen["before"].state_dict()[key])
    assert moved and math.isfinite(final["test_acc"])


def test_glmc_starts_every_conv_and_linear_kaiming_normal_fan_in():
    cfg = compose_config(["dataset=synthetic", "model=resnet32", "model.width=16", "method=glmc"])
    data = build_data(cfg.dataset)
    method = build_method(cfg, data)
    torch.manual_seed(0)
    model = method.wrap(build_model(cfg.model, data.num_classes, data.channels, data.image_size))
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    checked = [m for m in layers if m.weight.numel() >= 1000]
    assert len(checked) >= 3 and any(isinstance(m, torch.nn.Linear) for m in checked)
    for m in checked:
        fan_in = m.weight[0].numel()
        assert m.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.15)


def test_final_json_keeps_the_best_epoch_and_its_shot_accuracies(tmp_path):
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=mlp", "model.hidden=[16]", "optimizer=sgd", "dataset.imbalance_factor=10")
    )
    cfg.trainer.epochs = 3
    final = run(without_hydra(cfg), folder=tmp_path / "run")
    history = read_lines(tmp_path / "run" / "metrics.jsonl")
    best = max(history, key=lambda r: r["test_acc"])
    assert (final["best_epoch"], final["best_test_acc"]) == (best["epoch"], best["test_acc"])
    assert final["best_shot_acc"] == best["shot_acc"] and final["shot_acc"] == history[-1]["shot_acc"]


def test_lesam_on_small_cnn_keeps_its_radius_clipped_and_its_loss_finite(tmp_path):
    """When ||g|| falls towards 0 on an easy problem, rho_t = delta / ||g|| grows without bound unless clipped."""
    overrides = smoke_overrides(
        tmp_path, "model=small_cnn", "optimizer=lesam", "dataset.num_train=4096", "trainer.batch_size=32"
    )
    cfg = without_hydra(compose_config([*overrides, "trainer.epochs=50", "trainer.max_steps=32"]))
    run(cfg, folder=tmp_path / "run")
    history = read_lines(tmp_path / "run" / "metrics.jsonl")
    assert all(math.isfinite(r["train_loss"]) and r["skipped_steps"] == 0 for r in history)
    radii = [rho for line in read_lines(tmp_path / "run" / "rho.jsonl") for rho in line["rho"]]
    assert radii and max(radii) <= cfg.optimizer.rho_max + 1e-6
    assert json.loads((tmp_path / "run" / "final.json").read_text())["hyperparameters"]["rho_max"] == 0.05
