"""GLMC (Du et al., CVPR 2023): global and local mixture consistency cumulative learning for long tails.

Each image of the uniformly sampled batch is paired with one drawn by class-rebalanced sampling, and
every pair is mixed twice with the same lambda ~ Beta(a, a): globally (MixUp) and locally (CutMix).
Both mixtures pass through the network, which has two classifier heads and a projection/prediction
pair on its features:
- the first head learns the mixed labels (the balanced loss);
- the second head learns them weighted by inverse class frequency (the rebalanced loss) and is the
  head that is tested;
- each mixture's predicted projection matches the other's projection (negative cosine similarity,
  no gradient through the target: the mixture-consistency loss).
loss = alpha * balanced + (1 - alpha) * rebalanced + contrast_weight * consistency, with
alpha = 1 - (epoch / epochs)^2 moving the weight from the first head to the second (cumulative).
Defaults and details follow the official code (github.com/ynu-yangpeng/GLMC).
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from lesam.core.errors import UserError
from lesam.data import DataSplits
from lesam.methods.base import Method, upcast
from lesam.methods.batch import Batch
from lesam.models.classifier import remove_classifier
from lesam.models.init import init_kaiming_fan_in


class Heads(NamedTuple):
    """The four outputs of a GLMC network for one batch."""

    logits: Tensor  # first head
    rebalanced: Tensor  # second head, the one tested
    projection: Tensor
    prediction: Tensor


class GLMCNet(nn.Module):
    """A backbone without its classifier, two classifier heads, a projection and a prediction layer."""

    def __init__(self, backbone: nn.Module, num_classes: int, projection_dim: int) -> None:
        super().__init__()
        features = remove_classifier(backbone)
        self.backbone = backbone
        self.classifier = nn.Linear(features, num_classes)
        self.rebalanced = nn.Linear(features, num_classes)
        self.projection = nn.Linear(features, projection_dim)
        self.prediction = nn.Linear(projection_dim, projection_dim)

    def forward(self, x: Tensor) -> Tensor:
        """The rebalanced head's logits: what the network predicts."""
        return self.rebalanced(self.backbone(x))

    def forward_train(self, x: Tensor) -> Heads:
        """All four outputs, for the training loss."""
        features = self.backbone(x)
        projection = self.projection(features)
        return Heads(self.classifier(features), self.rebalanced(features), projection, self.prediction(projection))


class PairedViews(Dataset):
    """Item i: two augmented views of image i and of an image j drawn with probability `weights[j]`.

    Returns a (4, C, H, W) tensor [view of i, view of i, view of j, view of j] and the labels (y_i, y_j).
    """

    def __init__(self, dataset: Dataset, weights: Tensor) -> None:
        self.dataset, self.weights = dataset, weights

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        drawn = int(torch.multinomial(self.weights, 1))
        (a, label), (b, _) = self.dataset[index], self.dataset[index]
        (c, drawn_label), (d, _) = self.dataset[drawn], self.dataset[drawn]
        return torch.stack([a, b, c, d]), torch.tensor([int(label), int(drawn_label)])


@dataclass
class MixedBatch(Batch):
    """`inputs` is the MixUp mixture, `cutmix` the CutMix one; both share `targets` (soft labels)."""

    cutmix: Tensor
    targets: Tensor
    weighted_targets: Tensor


def dataset_labels(dataset: Dataset) -> Tensor:
    """The label of every training item (torchvision's `targets`, or `labels`)."""
    labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = getattr(dataset, "labels", None)
    if labels is None:
        raise UserError(f"method=glmc needs a training set that lists its labels; {type(dataset).__name__} does not")
    return torch.as_tensor(labels)


def paste_box(images: Tensor, patches: Tensor, lam: float) -> Tensor:
    """CutMix: a copy of `images` with a box of about (1 - lam) of the area taken from `patches`.

    As the official code: box sides ceil(side * sqrt(1 - lam)) centred at a uniform pixel, clipped
    to the image, and the labels mixed with lam itself (not the clipped area).
    """
    height, width = images.shape[-2:]
    cut_h, cut_w = (math.ceil(side * math.sqrt(1 - lam)) for side in (height, width))
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = patches[..., top:bottom, left:right]
    return mixed


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """-sum_c targets_c log softmax(logits)_c, averaged over the batch."""
    return -(F.log_softmax(upcast(logits), dim=1) * targets).sum(dim=1).mean()


def negative_cosine(prediction: Tensor, target: Tensor) -> Tensor:
    """SimSiam's loss: minus the mean cosine similarity, with no gradient through `target`."""
    return -F.cosine_similarity(upcast(prediction), upcast(target.detach()), dim=-1).mean()


class GLMC(Method):
    """GLMC's mixtures, heads and cumulative loss; SAM-style optimizers perturb all of its parameters."""

    capturable = False  # each batch's mixing draws lambda and the CutMix box on the host

    def __init__(self, cfg: DictConfig, data: DataSplits) -> None:
        super().__init__(cfg, data)
        if cfg.trainer.get("steps") is not None:
            raise UserError("method=glmc weights its losses by epoch; set trainer.epochs, not trainer.steps")
        m = cfg.method
        self.num_classes, self.epochs = data.num_classes, cfg.trainer.epochs
        self.projection_dim, self.contrast_weight = m.projection_dim, m.contrast_weight
        self.mix = torch.distributions.Beta(float(m.mix_alpha), float(m.mix_alpha))
        labels = dataset_labels(data.train)
        counts = torch.bincount(labels, minlength=data.num_classes).clamp(min=1).double()
        self.sample_weights = (counts**-m.resample_weighting)[labels]
        weights = counts**-m.label_weighting
        self.class_weights = (weights / weights.sum() * data.num_classes).float()
        self.alpha = 1.0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The backbone with GLMC's heads, every convolution and linear layer initialised as GLMC's ResNet-32."""
        network = GLMCNet(model, self.num_classes, self.projection_dim)
        init_kaiming_fan_in(network)  # GLMC model/ResNet_cifar.py L5-8, applied at L78
        return super().wrap(network)

    def train_set(self, dataset: Dataset) -> Dataset:
        """Each image with a rebalanced partner, two views of each."""
        return PairedViews(dataset, self.sample_weights)

    def batch(self, inputs: Tensor, labels: Tensor, epoch: float) -> MixedBatch:
        """MixUp and CutMix of each image with its partner, soft labels, and this epoch's alpha."""
        self.alpha = 1 - (math.floor(epoch) / self.epochs) ** 2
        first, second, partner_first, partner_second = inputs.unbind(1)
        own, partner = labels.unbind(1)
        lam = float(self.mix.sample())
        targets = lam * F.one_hot(own, self.num_classes) + (1 - lam) * F.one_hot(partner, self.num_classes)
        return MixedBatch(
            inputs=lam * first + (1 - lam) * partner_first,
            labels=own if lam >= 0.5 else partner,  # the accuracy on mixtures counts the larger part
            cutmix=paste_box(second, partner_second, lam),
            targets=targets,
            weighted_targets=targets * self.class_weights.to(targets.device),
        )

    def loss(self, model: nn.Module, batch: MixedBatch, autocast: AbstractContextManager) -> tuple[Tensor, Tensor]:
        """alpha * balanced + (1 - alpha) * rebalanced + contrast_weight * consistency; the MixUp logits."""
        with autocast:
            mix, cut = model.forward_train(batch.inputs), model.forward_train(batch.cutmix)
        balanced = soft_cross_entropy(mix.logits, batch.targets) + soft_cross_entropy(cut.logits, batch.targets)
        rebalanced = soft_cross_entropy(mix.rebalanced, batch.weighted_targets) + soft_cross_entropy(
            cut.rebalanced, batch.weighted_targets
        )
        consistency = negative_cosine(mix.prediction, cut.projection) + negative_cosine(cut.prediction, mix.projection)
        loss = self.alpha * balanced + (1 - self.alpha) * rebalanced + self.contrast_weight * consistency
        return loss, mix.rebalanced
