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

import pyarrow as pa

from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import TABLE_SCHEMA, RewriteTable, rule_id


def rule(source: str, target: str) -> dict[str, object]:
    """A rule as the miner writes it, with the support of a well-established rewrite."""
    return {
        "rule_id": rule_id(source, target),
        "source": source,
        "target": target,
        "source_example": source,
        "target_example": target,
        "p_source": 0.1,
        "p_target": 0.9,
        "absorb_source": 0.1,
        "absorb_target": 0.9,
        "support": 10,
        "users": 5,
        "households": 3,
        "source_turns": 20,
        "target_turns": 30,
        "source_users": 6,
        "sensitive": False,
        "deployed_turns": 0,
        "deployed_success": 0,
        "p_worse_after": 0.0,
        "status": "active",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rule", nargs=2, action="append", default=[], metavar=("SOURCE", "TARGET"))
    args = parser.parse_args()
    rows = [rule(s, t) for s, t in args.rule]
    table = RewriteTable(pa.Table.from_pylist(rows, schema=TABLE_SCHEMA), {}) if rows else None
    print(Rewriter.from_parts(table=table).save(args.out))


if __name__ == "__main__":
    main()
