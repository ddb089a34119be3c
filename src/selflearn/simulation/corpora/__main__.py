"""``python -m selflearn.simulation.corpora [--markdown]``: print what each corpus gives."""

from __future__ import annotations

import sys

from selflearn.simulation.corpora.report import _main

if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
