"""The classifier of a network: its last linear layer, which warm starts and extra heads work on."""

from __future__ import annotations

from torch import nn


def classifier_name(model: nn.Module) -> str:
    """The dotted name of the last nn.Linear registered in `model` (every backbone here ends in one)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear classifier")
    return names[-1]


def classifier(model: nn.Module) -> nn.Linear:
    """The last linear layer of `model`."""
    return model.get_submodule(classifier_name(model))


def remove_classifier(model: nn.Module) -> int:
    """Replace the classifier by the identity, so that `model` returns features; their dimension."""
    parent, _, name = classifier_name(model).rpartition(".")
    features = classifier(model).in_features
    setattr(model.get_submodule(parent), name, nn.Identity())
    return features
