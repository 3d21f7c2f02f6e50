"""Analyse a trained checkpoint: python analyze.py analysis=accuracy checkpoint=outputs/<run>/last.pt"""

import hydra
from omegaconf import DictConfig

from lesam.analysis.run import run_analysis
from lesam.engine import cli


@hydra.main(version_base="1.3", config_path="configs", config_name="analyze")
@cli.exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Run the analysis and write its JSON next to the checkpoint."""
    run_analysis(cfg)


if __name__ == "__main__":
    cli.launch(main)
