"""The presets of the paper's other settings carry its values; ViT-B/16 weights come from a local file
in torchvision's or timm's layout; a missing data root or weights file gives one clear line."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import ROOT, compose_config, smoke_overrides, without_hydra
from lesam.analysis.accuracy import accuracy
from lesam.analysis.loaded_run import load_run
from lesam.core.errors import UserError
from lesam.engine.run import run
from lesam.engine.trainer import Trainer
from lesam.models import build_model

TINY_VIT = {"patch_size": 16, "layers": 1, "heads": 2, "hidden_dim": 8, "mlp_dim": 16}


@pytest.mark.parametrize("experiment,model", [("imagenet_r50", "resnet50"), ("imagenet_r101", "resnet101")])
def test_imagenet_presets_follow_appendix_f(experiment, model):
    cfg = compose_config([f"experiment={experiment}", "optimizer=lesam"])
    t, o = cfg.trainer, cfg.optimizer
    assert (cfg.dataset.name, cfg.model.name, cfg.dataset.image_size) == ("imagenet", model, 224)
    assert (t.epochs, t.batch_size, o.lr, cfg.schedule.name) == (90, 512, 0.2, "cosine")
    assert (o.delta, o.rho_max, o.anneal_start_epoch) == (0.3, 0.2, 60)
    assert t.workers > 0 and t.persistent_workers
    assert compose_config(["experiment=imagenet_r50_lesam"]) == compose_config(
        ["experiment=imagenet_r50", "optimizer=lesam"]
    )


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_vit_presets_fine_tune_for_8k_steps_at_224(dataset):
    for optimizer in ("sgd", "sam", "lesam"):
        cfg = compose_config([f"experiment=vit_b16_{dataset}", f"optimizer={optimizer}"])
        assert (cfg.dataset.name, cfg.model.name, cfg.dataset.image_size) == (dataset, "vit_b16", 224)
        assert (cfg.trainer.steps, cfg.optimizer.name) == (8000, optimizer)


def test_long_tail_preset_uses_glmc_and_both_imbalance_factors():
    for factor in (100, 50):
        cfg = compose_config(["experiment=cifar100_lt", f"dataset.imbalance_factor={factor}", "optimizer=sam"])
        assert (cfg.dataset.name, cfg.dataset.imbalance_factor, cfg.method.name) == ("cifar100_lt", factor, "glmc")
        assert (cfg.model.name, cfg.model.width, cfg.trainer.epochs, cfg.trainer.batch_size) == (
            "resnet32",
            64,
            200,
            64,
        )
    assert compose_config(["experiment=cifar100_lt", "method=erm"]).method.name == "erm"


@pytest.mark.parametrize("experiment,source,weights", [("pacs", "sketch", True), ("vlcs", "SUN09", False)])
def test_domain_presets_use_erm_plus_plus(experiment, source, weights):
    cfg = compose_config([f"experiment={experiment}", f"dataset.source_domain={source}", "optimizer=lesam"])
    assert (cfg.dataset.source_domain, cfg.method.name, cfg.model.name) == (source, "ermpp", "resnet18_imagenet")
    assert bool(cfg.model.weights) == weights
    assert (cfg.optimizer.base, cfg.optimizer.lr, cfg.schedule.milestones, cfg.trainer.steps) == (
        "adam",
        5e-5,
        [],
        4500,
    )


@pytest.mark.parametrize("dataset,delta", [("cifar10", 0.2), ("cifar100", 0.4)])
def test_robustness_presets_follow_zhang_et_al(dataset, delta):
    lesam = compose_config([f"experiment=robust_{dataset}", "optimizer=lesam"])
    sam = compose_config([f"experiment=robust_{dataset}", "optimizer=sam"])
    assert (lesam.model.name, lesam.dataset.name, lesam.dataset.augment) == ("preact_resnet18", dataset, "reflect")
    assert (lesam.trainer.epochs, lesam.optimizer.lr, lesam.schedule.milestones) == (100, 0.1, [75, 90])
    assert lesam.optimizer.delta == delta and "delta" not in sam.optimizer
    assert sam.optimizer.rho == 0.05 and "rho" not in lesam.optimizer


def vit_weights_file(folder: Path, layout: str) -> tuple[Path, nn.Module, str]:
    """A tiny ImageNet ViT (TINY_VIT's size, 32 px) saved as a state_dict in `layout`; its file, itself and a
    key only that layout has."""
    if layout == "torchvision":
        from torchvision.models.vision_transformer import VisionTransformer

        source = VisionTransformer(32, 16, 1, 2, 8, 16, num_classes=1000)
        key = "conv_proj.weight"
    else:
        from timm.models.vision_transformer import VisionTransformer

        source = VisionTransformer(img_size=32, patch_size=16, embed_dim=8, depth=1, num_heads=2, mlp_ratio=2)
        key = "patch_embed.proj.weight"
    torch.save(source.state_dict(), folder / "vit.pth")
    return folder / "vit.pth", source, key


@pytest.mark.parametrize("layout", ["torchvision", "timm"])
def test_vit_loads_a_local_weights_file_and_starts_with_a_zero_head(tmp_path, layout):
    file, source, key = vit_weights_file(tmp_path, layout)
    cfg = OmegaConf.create({"name": "vit_b16", "weights": str(file), **TINY_VIT})
    model = build_model(cfg, 10, 3, 32)
    assert torch.equal(model.state_dict()[key], source.state_dict()[key])
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert head.out_features == 10 and not head.weight.any()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(UserError, match="does not fit"):
        build_model(cfg, 10, 3, 48)  # other input size: the position embedding does not fit


@pytest.mark.parametrize("layout", ["torchvision", "timm"])
def test_analyses_load_a_vit_run_fine_tuned_from_either_layout(tmp_path, layout):
    file, _, key = vit_weights_file(tmp_path, layout)
    tiny = [f"model.{k}={v}" for k, v in TINY_VIT.items()]
    cfg = compose_config(
        smoke_overrides(tmp_path, "model=vit_b16", f"model.weights={file}", *tiny, "trainer.max_steps=2")
    )
    final = run(cfg, folder=tmp_path / "run")
    file.unlink()  # the analysis needs the run folder alone, not the pretrained file
    loaded = load_run(tmp_path / "run" / "last.pt", "cpu")
    assert key in loaded.model.state_dict()
    analysed = accuracy(OmegaConf.create({"batch_size": 32, "workers": 0, "precision": "fp32"}), loaded)
    assert analysed["test_acc"] == pytest.approx(final["test_acc"])


def test_trainer_steps_counts_steps_and_the_schedule_spans_them(tmp_path):
    cfg = compose_config(smoke_overrides(tmp_path, "model=mlp", "model.hidden=[8]", "optimizer=sgd", "trainer.steps=6"))
    trainer = Trainer(without_hydra(cfg))
    assert (trainer.steps_per_epoch, trainer.epochs) == (4, 2)
    while not trainer.done:
        record = trainer.train_epoch()
    assert trainer.step == 6
    assert trainer.schedule.lr_factor(6) == pytest.approx(0.0) and record["lr"] == pytest.approx(0.0)


def train(tmp_path, *overrides):
    return subprocess.run(
        [sys.executable, "train.py", f"output_root={tmp_path / 'out'}", "trainer.progress=false", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "overrides,needles",
    [
        (["experiment=imagenet_r50", "dataset.root=/nonexistent/imagenet"], ["imagenet", "dataset.root"]),
        (["experiment=vlcs", "dataset.root=/nonexistent/VLCS"], ["vlcs", "dataset.root"]),
        (
            ["experiment=vit_b16_cifar10", "model.weights=/nonexistent/vit.pth", "dataset=synthetic"],
            ["/nonexistent/vit.pth", "https://download.pytorch.org/models/vit_b_16-c867db91.pth", "model.weights"],
        ),
        (
            ["experiment=pacs", "dataset=synthetic", "model.weights=/nonexistent/r18.pth"],
            ["/nonexistent/r18.pth", "resnet18-f37072fd.pth"],
        ),
    ],
)
def test_missing_data_or_weights_give_one_line(tmp_path, overrides, needles):
    result = train(tmp_path, *overrides)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "name,config,classes,size,published",
    [
        ("resnet32", {"width": 16}, 10, 32, 0.46e6),  # He et al. 2016, table 6
        ("preact_resnet18", {"width": 64}, 10, 32, 11.17e6),
        ("resnet50", {"weights": None}, 1000, 224, 25.56e6),  # torchvision's model card
        ("resnet101", {"weights": None}, 1000, 224, 44.55e6),
        (
            "vit_b16",
            {"weights": None, "patch_size": 16, "layers": 12, "heads": 12, "hidden_dim": 768, "mlp_dim": 3072},
            1000,
            224,
            86.57e6,
        ),
    ],
)
def test_new_backbones_have_their_published_sizes(name, config, classes, size, published):
    model = build_model(OmegaConf.create({"name": name, **config}), classes, 3, size)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(published, rel=0.01)
