"""Draw one of the paper's figures from run folders: python scripts/figure.py fig3 [--dry] [OVERRIDE ...]

The Makefile's fig3 ... fig7 call this. OVERRIDEs are train.py overrides applied to every run of
the figure (a smaller budget, another data root); --analysis passes analyze.py overrides.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from lesam.core.paths import PROJECT
from lesam.engine.cli import explain, fail, quiet_when_the_reader_leaves
from lesam.report.figures import FIGURES, dry_listing, figure_runs, make_figure
from lesam.report.plan import DEFAULT_ROOT


@quiet_when_the_reader_leaves
def main(argv: list[str]) -> None:
    """Print the figure's commands (--dry) or draw it as PNG and PDF."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--dry", action="store_true", help="print the commands of the runs and analyses it needs")
    parser.add_argument("--from", dest="root", type=Path, default=DEFAULT_ROOT, help="the folder of run folders")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="where the PNG and PDF files go")
    parser.add_argument("--analysis", default="", help="analyze.py overrides, e.g. 'analysis.top_k=20'")
    parser.add_argument("overrides", nargs="*", help="train.py overrides applied to every run")
    parser.error = lambda message: fail(f"{message}; see python scripts/figure.py --help")
    args = parser.parse_intermixed_args(argv)
    if Path.cwd() != PROJECT:  # the run folders and the printed commands are relative to the project
        args.root, args.out = args.root.resolve(), args.out.resolve()
        os.chdir(PROJECT)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    analysis_overrides = shlex.split(args.analysis)
    try:
        if args.dry:
            runs = figure_runs(args.figure, args.root, args.overrides)
            print("\n".join(dry_listing(args.figure, runs, args.root, analysis_overrides)))
            return
        for path in make_figure(args.figure, args.root, args.out, args.overrides, analysis_overrides):
            print(path)
    except Exception as error:  # noqa: BLE001 - a user mistake gets one line, anything else its traceback
        message = explain(error)
        if message is None:
            raise
        fail(message)


if __name__ == "__main__":
    main(sys.argv[1:])
