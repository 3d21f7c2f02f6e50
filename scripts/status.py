"""Where each run of a paper table stands, and the GPU-hours left: python scripts/status.py table1 (or all)

Called by `make status TABLE=tableN` and `make status`. Reads the run folders only: it launches nothing,
takes no lock and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lesam.core.errors import UserError
from lesam.core.paths import PROJECT
from lesam.engine.cli import fail
from lesam.report.status import report


def main(argv: list[str]) -> int:
    """Print where the runs stand, from the project folder; a user mistake ends in one line and status 2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", default="all", help="table1 ... table7, table_lesam_plus, table_dg, all")
    parser.add_argument("overrides", nargs="*", help="train.py overrides added to every run, as make tableN ARGS=")
    parser.add_argument("--from", dest="source", type=Path, help="look for the run folders below this folder only")
    parser.add_argument("--seeds", help="comma-separated seeds instead of the table's (0,1,2)")
    parser.error = lambda message: fail(f"{message}; see python scripts/status.py --help")
    args = parser.parse_intermixed_args(argv)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else None
    except ValueError:
        fail(f"--seeds {args.seeds}: give whole numbers separated by commas, e.g. 0,1,2")
    source = args.source.resolve() if args.source is not None else None
    os.chdir(PROJECT)  # run folders are relative to the project folder, as train.py writes them
    try:
        print(report(args.table, source, seeds, tuple(args.overrides)))
    except UserError as error:
        fail(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
