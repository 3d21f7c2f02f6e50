"""Find the run folders under a root and read their results and configs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from lesam.core.run_folder import RunFolder


def load_runs(root: Path) -> list[dict]:
    """One dict per run folder below `root`: its path, config, epoch metrics and result (None if unfinished)."""
    runs = []
    for config in sorted(Path(root).glob("**/.hydra/config.yaml")):
        folder = RunFolder(config.parent.parent)
        runs.append(
            {
                "path": folder.path,
                "config": OmegaConf.to_container(OmegaConf.load(config), resolve=False),
                "final": folder.read_final() if folder.is_finished() else None,
                "metrics": folder.read_metrics(),  # a line cut off by a crash is left out
            }
        )
    return runs
