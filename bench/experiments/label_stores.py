"""What the label experiments (``link_veto.py``, ``boundary_veto.py``) share: the stores
``python bench/labels.py`` leaves labelled in ``bench/.cache/labels``, and their options."""

from __future__ import annotations

import argparse
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "labels"


def arguments(doc: str | None, taus: str) -> argparse.Namespace:
    """``--train`` (the store the experiment's model learns from), ``--populations`` (stores
    to evaluate on) and ``--taus`` (the thresholds swept, ``taus`` by default), parsed, with
    ``taus`` as a list of floats."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=CACHE / "train-12h7d.duckdb")
    parser.add_argument(
        "--populations",
        default="held-out-8h7d,held-out-clean-8h7d,real-4h3d",
        help="stores in bench/.cache/labels, labelled by bench/labels.py",
    )
    parser.add_argument("--taus", default=taus)
    args = parser.parse_args()
    args.taus = [float(t) for t in args.taus.split(",")]
    return args
