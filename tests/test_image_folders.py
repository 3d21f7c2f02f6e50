"""ImageNet's and DomainBed's folder layouts, written as tiny images into tmp_path, read with the right
classes, labels and domains; a PACS-shaped run reports each target domain and their mean."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import compose_config, smoke_overrides
from lesam.core.errors import UserError
from lesam.data import build_data
from lesam.engine.run import run

CLASSES = ["dog", "elephant", "giraffe"]


def write_images(folder: Path, classes: list[str], per_class: int, size: int = 12, shade: int = 0) -> None:
    """`per_class` RGB images per class folder; pixel values encode the class (and a domain's shade)."""
    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            value = 60 * label + shade + i
            Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(folder / name / f"{i}.png")


def test_imagenet_layout_is_read_with_its_classes(tmp_path):
    write_images(tmp_path / "train", CLASSES, per_class=3)
    write_images(tmp_path / "val", CLASSES, per_class=2)
    cfg = compose_config(
        ["dataset=imagenet", f"dataset.root={tmp_path}", "dataset.image_size=8", "dataset.resize_size=10"]
    )
    data = build_data(cfg.dataset)
    assert (data.num_classes, data.channels, data.image_size) == (3, 3, 8)
    assert (len(data.train), len(data.test)) == (9, 6)
    assert data.train.classes == CLASSES
    assert [label for _, label in data.test] == [0, 0, 1, 1, 2, 2]
    image, _ = data.train[0]
    assert image.shape == (3, 8, 8)
    assert data.mean == (0.485, 0.456, 0.406)


@pytest.mark.parametrize(
    "dataset,domains",
    [("pacs", ["photo", "art_painting", "cartoon", "sketch"]), ("vlcs", ["VOC2007", "LabelMe", "Caltech101", "SUN09"])],
)
def test_domainbed_layout_trains_on_the_source_and_tests_each_other_domain(tmp_path, dataset, domains):
    for shade, domain in enumerate(domains):
        write_images(tmp_path / domain, CLASSES, per_class=shade + 1, shade=10 * shade)
    source = domains[2]
    cfg = compose_config([f"dataset={dataset}", f"dataset.root={tmp_path}", f"dataset.source_domain={source}"])
    data = build_data(cfg.dataset)
    assert data.num_classes == 3 and data.train.classes == CLASSES
    assert len(data.train) == 3 * 3  # the source domain's images only
    assert list(data.test_domains) == [d for d in domains if d != source]
    for shade, domain in enumerate(domains):
        if domain != source:
            assert len(data.test_domains[domain]) == 3 * (shade + 1)
    assert len(data.test) == sum(len(d) for d in data.test_domains.values())
    # the test transform only resizes: each target image keeps its domain's shade and its class
    image, label = data.test_domains[domains[1]][0]
    assert label == 0 and image.shape == (3, 224, 224)


def test_unknown_source_domain_is_a_user_error(tmp_path):
    cfg = compose_config(["dataset=pacs", f"dataset.root={tmp_path}", "dataset.source_domain=painting"])
    with pytest.raises(UserError, match="source_domain='painting'.*photo, art_painting, cartoon, sketch"):
        build_data(cfg.dataset)


def test_a_flat_imagenet_val_folder_says_how_to_sort_it_into_class_folders(tmp_path):
    write_images(tmp_path / "train", CLASSES, per_class=1)
    (tmp_path / "val").mkdir()
    for i in (1, 2):  # ILSVRC's val tar as extracted: images, no class folders
        Image.new("RGB", (12, 12)).save(tmp_path / "val" / f"ILSVRC2012_val_{i:08d}.JPEG")
    cfg = compose_config(["dataset=imagenet", f"dataset.root={tmp_path}"])
    with pytest.raises(UserError) as error:
        build_data(cfg.dataset)
    message = str(error.value)
    assert f"no images in class folders under '{tmp_path / 'val'}'" in message
    assert "sort its val images into class folders" in message and "valprep.sh" in message, message


def test_missing_data_root_is_a_user_error(tmp_path):
    for overrides in (["dataset=imagenet"], ["dataset=vlcs"]):
        cfg = compose_config([*overrides, f"dataset.root={tmp_path / 'absent'}"])
        with pytest.raises(UserError, match="set dataset.root"):
            build_data(cfg.dataset)


def test_a_domain_generalisation_run_reports_each_target_domain(tmp_path):
    domains = ["photo", "art_painting", "cartoon", "sketch"]
    for shade, domain in enumerate(domains):
        write_images(tmp_path / "data" / domain, CLASSES, per_class=4, shade=10 * shade)
    quiet = [o for o in smoke_overrides(tmp_path) if o.startswith(("trainer.", "output_root"))]
    cfg = compose_config(
        [
            *quiet,
            "experiment=pacs",
            f"dataset.root={tmp_path / 'data'}",
            "dataset.image_size=16",
            "model=small_cnn",
            "model.width=4",
            "optimizer=lesam",
            "optimizer.base=adam",  # ERM++'s base, which the pacs recipe sets for its own backbone
            "optimizer.lr=1e-3",
            "trainer.steps=3",
            "trainer.batch_size=4",
            "method.linear_probe_steps=2",
            "method.average_start_step=1",
        ]
    )
    final = run(cfg, folder=tmp_path / "run")
    assert final["steps"] == 3 and final["method"] == "ermpp" and final["skipped_steps"] == 0
    assert list(final["domain_acc"]) == ["art_painting", "cartoon", "sketch"]
    assert final["test_acc"] == pytest.approx(sum(final["domain_acc"].values()) / 3)
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["domain_acc"] == final["domain_acc"]
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["trainer"]
    assert "exp_avg" in next(iter(state["optimizer"]["state"].values()))  # Adam's moments


def test_torchvision_resnet_loads_a_local_weights_file_but_not_its_classifier(tmp_path):
    from lesam.models import build_model

    cfg = OmegaConf.create({"name": "resnet18_imagenet", "weights": None})
    source = build_model(cfg, 1000, 3, 32)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    loaded = build_model(OmegaConf.merge(cfg, {"weights": str(tmp_path / "resnet18.pth")}), 7, 3, 32)
    assert torch.equal(loaded.conv1.weight, source.conv1.weight)
    assert loaded.fc.out_features == 7
    skipped = build_model(OmegaConf.merge(cfg, {"weights": str(tmp_path / "absent.pth")}), 7, 3, 32, pretrained=False)
    assert not torch.equal(skipped.conv1.weight, source.conv1.weight)
