"""Launch or resume a paper table's runs, then write it from the run folders: python scripts/table.py table1

Called by `make table1` ... `make table7`, `make table_lesam_plus`, `make table_dg` and `make tables`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lesam.core.errors import UserError
from lesam.core.paths import PROJECT
from lesam.engine.cli import fail, quiet_when_the_reader_leaves
from lesam.report.make_table import Options, make_table


def parse(argv: list[str]) -> tuple[str, Options]:
    """The table's name and the options, from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="table1 ... table7, table_lesam_plus, table_dg, or all (with --dry or --from)")
    parser.add_argument("overrides", nargs="*", help="train.py overrides added to every run (e.g. trainer.device=cuda)")
    parser.add_argument("--dry", action="store_true", help="print one line per run, the command that runs it")
    parser.add_argument("--from", dest="source", type=Path, help="render from the run folders below this folder only")
    parser.add_argument("--gpus", default="", help="comma-separated GPU ids: one run per GPU, each pinned to it")
    parser.add_argument("--launcher", help="a configs/hydra/launcher option for the multiruns, e.g. slurm or slurm_cpu")
    parser.add_argument("--seeds", help="comma-separated seeds instead of the table's (0,1,2)")
    parser.add_argument("--out", type=Path, default=Path("tables"), help="where the .md and .tex go (tables/)")
    parser.add_argument("--bench", type=Path, help="a benchmark JSON: Table 6's times, a dry run's GPU-hours")
    parser.add_argument(
        "--variant",
        default="paper",
        help="the recipe: paper (appendix F) or authors (its authors' code; table1, table4)",
    )
    parser.error = lambda message: fail(f"{message}; see python scripts/table.py --help")
    args = parser.parse_intermixed_args(argv)
    if args.gpus and args.launcher:
        parser.error("--gpus and --launcher exclude each other")
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else None
    gpus = tuple(g for g in args.gpus.split(",") if g)
    extra = tuple(args.overrides)
    options = Options(
        args.dry, args.source, gpus, args.launcher, seeds, extra, args.out, args.bench, variant=args.variant
    )
    return args.table, options


@quiet_when_the_reader_leaves
def main(argv: list[str]) -> int:
    """Run the table command from the project folder; a user mistake ends in one line and status 2."""
    name, options = parse(argv)
    if Path.cwd() != PROJECT:  # run folders and commands are relative to the project folder
        for key in ("source", "out", "bench"):
            if getattr(options, key) is not None:
                setattr(options, key, getattr(options, key).resolve())
        os.chdir(PROJECT)
    try:
        return make_table(name, options)
    except UserError as error:
        fail(str(error))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
