"""Every experiment preset for 2 steps at tiny size, then every table end to end: python scripts/smoke.py

Called by `make smoke`. Writes into --root (default outputs/smoke), which it clears first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lesam.engine.cli import fail, quiet_when_the_reader_leaves
from lesam.report.smoke import smoke

MARKER = ".smoke"  # only a folder that holds it is cleared


def fresh(root: Path) -> None:
    """Empty `root` if an earlier smoke made it; refuse any other non-empty folder."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            fail(f"'{root}' is not empty and was not made by the smoke; pass --root <a new folder>")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).touch()


@quiet_when_the_reader_leaves
def main(argv: list[str]) -> int:
    """Run the smoke; 1 when a preset or a table failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("outputs/smoke"), help="where the runs and tables go")
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds of each table's runs, up to the table's (2 or 3 give intervals)"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        fail(f"--seeds {args.seeds}: pass 1 or more (the first seeds of each table's runs)")
    fresh(args.root)
    report = smoke(args.root, seeds=args.seeds, say=lambda line: print(line, flush=True))
    print(f"presets: {len(report.presets)} ran 2 steps ({', '.join(report.presets)})")
    for name, paths in report.tables.items():
        print(f"{name}: {', '.join(map(str, paths))}")
    for name, reason in report.skipped.items():
        print(f"skipped {name}: {reason}")
    for name, reason in report.failed.items():
        print(f"FAILED {name}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
