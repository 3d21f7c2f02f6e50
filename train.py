"""Train one run: python train.py optimizer=lesam model=wrn28_10 dataset=cifar100"""

import hydra
from omegaconf import DictConfig

from lesam.engine import cli
from lesam.engine.run import run


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
@cli.exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Compose the config and train (or resume, or skip a finished run)."""
    run(cfg)


if __name__ == "__main__":
    cli.launch(main)
