"""ImageNet-style networks: torchvision's ResNet-18/50/101 and ViT-B/16, from scratch or from a local file.

Pretrained weights are read from the file that `model.weights` names, never downloaded, and loaded
with torch.load(weights_only=True). The classifier is always new: its weights are not loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from lesam.core.errors import UserError
from lesam.models.classifier import classifier, classifier_name

# config name -> torchvision architecture
RESNETS = {"resnet18_imagenet": "resnet18", "resnet50": "resnet50", "resnet101": "resnet101"}
# where torchvision's ImageNet-1K weights of each architecture are published
WEIGHTS_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "vit_b_16": "https://download.pytorch.org/models/vit_b_16-c867db91.pth",
}


def read_weights(path: str, arch: str) -> dict:
    """The state_dict in the file at `path`, or one line saying where to get the file."""
    file = Path(path)
    if not file.is_file():
        raise UserError(
            f"no weights file '{file}' for {arch}; download {WEIGHTS_URLS[arch]} (torchvision's ImageNet-1K "
            "weights) to that path, or set model.weights to the file (null trains from scratch)"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UserError(
            f"cannot read the weights file '{file}' ({type(error).__name__}); it must be a .pth state_dict"
        ) from error
    for key in ("state_dict", "model"):  # checkpoints that wrap the state_dict
        if isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_backbone(model: nn.Module, state: dict, arch: str) -> None:
    """Load every weight of `state` except the classifier's; anything else that does not fit is an error."""
    head = classifier_name(model) + "."
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a shape differs: another model size or input resolution
        detail = str(error).strip().splitlines()[-1].strip()
        raise UserError(f"the weights file does not fit this {arch} ({detail})") from error
    wrong = [k for k in missing if not k.startswith(head)] + list(unexpected)
    if wrong:
        raise UserError(f"the weights file does not fit {arch}: {', '.join(wrong[:4])} ...")


def torchvision_resnet(cfg: DictConfig, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """torchvision's ResNet named by RESNETS, with ImageNet weights when `cfg.weights` names a file."""
    from torchvision import models

    arch = RESNETS[cfg.name]
    if in_channels != 3:
        raise UserError(f"model={cfg.name} takes RGB images; the data set has {in_channels} channel(s)")
    model = getattr(models, arch)(num_classes=num_classes)
    if cfg.weights:
        load_backbone(model, read_weights(cfg.weights, arch), arch)
    return model


# a key only each layout of a ViT state_dict has -> that layout
VIT_LAYOUT_KEYS = {"conv_proj.weight": "torchvision", "patch_embed.proj.weight": "timm"}


def vit_layout(state: Mapping[str, object]) -> str | None:
    """Whose ViT layout a state_dict follows, torchvision's or timm's (its keys may carry a wrapper's prefix);
    None for neither."""
    for key in state:
        for marker, layout in VIT_LAYOUT_KEYS.items():
            if key == marker or key.endswith("." + marker):
                return layout
    return None


def vision_transformer(
    cfg: DictConfig, num_classes: int, in_channels: int, image_size: int, layout: str | None = None
) -> nn.Module:
    """ViT-B/16 (or the size the config gives) in the layout of its weights file, torchvision's or timm's;
    `layout` names it where the weights come from elsewhere (a run's checkpoint); torchvision's from scratch."""
    state = read_weights(cfg.weights, "vit_b_16") if cfg.weights else None
    if in_channels != 3:
        raise UserError(f"model={cfg.name} takes RGB images; the data set has {in_channels} channel(s)")
    if state is not None:
        layout = vit_layout(state)
        if layout is None:
            raise UserError(
                f"'{cfg.weights}' holds neither torchvision's nor timm's ViT weights (conv_proj / patch_embed)"
            )
    if layout == "timm":
        from timm.models.vision_transformer import VisionTransformer

        model = VisionTransformer(
            img_size=image_size,
            patch_size=cfg.patch_size,
            embed_dim=cfg.hidden_dim,
            depth=cfg.layers,
            num_heads=cfg.heads,
            mlp_ratio=cfg.mlp_dim / cfg.hidden_dim,
            num_classes=num_classes,
        )
    else:
        from torchvision.models.vision_transformer import VisionTransformer

        model = VisionTransformer(
            image_size, cfg.patch_size, cfg.layers, cfg.heads, cfg.hidden_dim, cfg.mlp_dim, num_classes=num_classes
        )
    if state is not None:
        load_backbone(model, state, "vit_b_16")
        head = classifier(model)  # a zero head, as the ViT paper fine-tunes
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    return model
