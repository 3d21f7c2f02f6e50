"""The paper's setting for its figures (sections 5.3 to 5.5, appendix D): ResNet-18 on CIFAR-100."""

PAPER = ("dataset=cifar100", "model=resnet18")
SEEDS = (0, 1, 2)
