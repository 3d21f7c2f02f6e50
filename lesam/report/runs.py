"""Find the run folders under a root and read their results and configs."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf


def load_runs(root: Path) -> list[dict]:
    """One dict per run folder below `root`: its path, config, epoch metrics and result (None if unfinished)."""
    runs = []
    for config in sorted(Path(root).glob("**/.hydra/config.yaml")):
        folder = config.parent.parent
        final = folder / "final.json"
        metrics = folder / "metrics.jsonl"
        runs.append(
            {
                "path": folder,
                "config": OmegaConf.to_container(OmegaConf.load(config), resolve=False),
                "final": json.loads(final.read_text()) if final.exists() else None,
                "metrics": [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
                if metrics.exists()
                else [],
            }
        )
    return runs
