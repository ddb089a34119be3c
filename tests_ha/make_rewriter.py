"""Write a rewriter folder for the Home Assistant tests (run with selflearn's own venv).

With no rule it is an empty rewriter: only the personal layer, which learns from the turns the
integration logs, can rewrite. ``--rule SOURCE TARGET`` adds a precomputed rule (delexicalized,
e.g. ``"kill the lights in the {area}" "turn off the lights in the {area}"``), standing in for a
mined table.

    .venv/bin/python tests_ha/make_rewriter.py OUT [--rule SOURCE TARGET]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rule", nargs=2, action="append", default=[], metavar=("SOURCE", "TARGET"))
    args = parser.parse_args()
    table = RewriteTable.from_rules(tuple(r) for r in args.rule) if args.rule else None
    print(Rewriter.from_parts(table=table).save(args.out))


if __name__ == "__main__":
    main()
