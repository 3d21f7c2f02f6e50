"""Optional external logging of the per-epoch records (the run folder always has them)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lesam.engine import distributed

log = logging.getLogger("lesam")


class NoLogger:
    """Logs nothing beyond the run folder."""

    def log(self, record: dict, step: int) -> None:
        """Ignore the record."""

    def finish(self) -> None:
        """Nothing to close."""


class WandbLogger(NoLogger):
    """Weights & Biases; mode `offline` needs no account and writes under the run folder.

    wandb's own messages are silenced (a banner, then a summary of every metric at the end): the
    run's address is logged once instead, and wandb's warnings and errors still show.
    """

    def __init__(self, cfg: DictConfig, folder: Path, name: str) -> None:
        import wandb

        self.run = wandb.init(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            mode=cfg.logger.mode,
            dir=str(folder),
            name=name,
            id=name,
            resume="allow",
            config=OmegaConf.to_container(cfg, resolve=True),
            settings=wandb.Settings(silent=True, console="off"),
        )
        if cfg.logger.mode == "online":
            log.info("wandb: %s", self.run.url)
        elif cfg.logger.mode == "offline":  # the run's files wait in the run folder for an upload
            log.info("wandb: offline; upload with `wandb sync %s`", Path(self.run.dir).parent)

    def log(self, record: dict, step: int) -> None:
        """Send one epoch's record."""
        self.run.log(record, step=step)

    def finish(self) -> None:
        """Flush and close the run."""
        self.run.finish()


def make_logger(cfg: DictConfig, folder: Path) -> NoLogger:
    """The logger that `cfg.logger.name` selects (on rank 0; the other processes log nothing)."""
    if cfg.logger.name == "wandb" and distributed.is_main():
        return WandbLogger(cfg, folder, folder.name)
    return NoLogger()
