"""Print the runs under a folder side by side: python scripts/compare.py outputs/demo"""

from __future__ import annotations

import sys
from pathlib import Path

from lesam.core.run_folder import DIVERGED
from lesam.engine.cli import quiet_when_the_reader_leaves
from lesam.report import load_runs


@quiet_when_the_reader_leaves
def main(root: str) -> None:
    """One line per run: data set, model, optimizer, seed, test accuracy, epochs and minutes."""
    runs = load_runs(Path(root))
    if not runs:
        sys.exit(f"error: no run folders under '{root}'; train first (e.g. make demo)")
    header = f"{'dataset':<14}{'model':<14}{'optimizer':<12}{'seed':>5}"
    print(f"{header}{'test acc %':>12}{'best %':>9}{'epochs':>8}{'min':>7}")
    for run in runs:
        c, f = run["config"], run["final"]
        name = (c["dataset"]["name"], c["model"]["name"], c["optimizer"]["name"], c["seed"])
        if f is None or f.get("status") == DIVERGED:
            print(f"{name[0]:<14}{name[1]:<14}{name[2]:<12}{name[3]:>5}{'unfinished' if f is None else DIVERGED:>12}")
            continue
        print(
            f"{name[0]:<14}{name[1]:<14}{name[2]:<12}{name[3]:>5}{f['test_acc']:>12.2f}{f['best_test_acc']:>9.2f}"
            f"{f['epochs']:>8}{f['seconds'] / 60:>7.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs")
