"""What each cell of a paper table trains with: python scripts/recipes.py table1 [--sources] [--variant authors]

Called by `make recipes TABLE=table1 [SOURCES=1] [VARIANT=authors]`. One row per run of the table, one column
per method value and per other value that differs between its cells or that a recipe sets; --sources adds
where each value comes from, and with --variant each value the variant changes, with both sources.
"""

from __future__ import annotations

import argparse
import sys

from lesam.core.errors import UserError
from lesam.engine.cli import fail, quiet_when_the_reader_leaves
from lesam.report.make_table import resolve
from lesam.report.plan import composer
from lesam.report.recipes import recipe_table


@quiet_when_the_reader_leaves
def main(argv: list[str]) -> None:
    """Print the table's recipes as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="table1 ... table7, table_lesam_plus, table_dg")
    parser.add_argument("--sources", action="store_true", help="add the source of each value")
    parser.add_argument(
        "--variant", default="paper", help="the recipe: paper (appendix F) or authors (its authors' code)"
    )
    parser.error = lambda message: fail(f"{message}; see python scripts/recipes.py --help")
    args = parser.parse_args(argv)
    try:
        table = resolve(args.table)
        with composer() as c:
            print(recipe_table(table, c, args.sources, args.variant))
    except UserError as error:
        fail(str(error))


if __name__ == "__main__":
    main(sys.argv[1:])
