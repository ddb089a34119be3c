"""Safety as a property (issue 42): over generated homes, teachings and requests, no path --
the rewrite layers, the recogniser's alternatives, a taught routine, a taught name, a name learned
from retries, a mined rule, a reviewed edit, an exported sentence -- makes the assistant lock,
unlock, open or arm anything without a question answered yes, or act on a rewrite that flips
polarity. The scenarios and the checks are in ``bench/safety_paths.py`` (the benchmark counts the
same violations over many more scenarios as ``sensitive_unasked``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("safety_paths", ROOT / "bench" / "safety_paths.py")
assert _spec is not None and _spec.loader is not None
safety = importlib.util.module_from_spec(_spec)
sys.modules["safety_paths"] = safety  # its dataclasses look their module up
_spec.loader.exec_module(safety)

EXAMPLES = int(os.environ.get("SELFLEARN_SAFETY_EXAMPLES", "25"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(scenario=safety.scenarios())
def test_no_path_acts_on_something_sensitive_unasked(scenario: Any) -> None:
    outcome = safety.run(scenario)
    assert not outcome.violations, [v.__dict__ for v in outcome.violations]


def test_the_checks_see_a_violation_and_the_known_paths_ask() -> None:
    """The property cannot pass vacuously: a home where every path is exercised finds sensitive
    proposals asked about, and a rewriter that acts unasked (confirm off) is caught."""
    scenario = safety.Scenario(
        home={
            "home_id": "safe",
            "areas": [{"id": "hall", "name": "Hall"}],
            "entities": [
                {"id": "lock.portal", "name": "Portal", "area": "hall", "state": "locked"},
                {
                    "id": "cover.bay",
                    "name": "Bay",
                    "area": "hall",
                    "device_class": "garage",
                    "state": "closed",
                },
                {"id": "light.hall", "name": "Hall Lamp", "area": "hall", "state": "off"},
            ],
        },
        sensitive=["Portal", "Bay"],
        lights=["Hall Lamp"],
        teach=["when i say let me in i mean unlock the portal and turn on the hall lamp"],
        retries=[("open the hatchy", "open the bay")],
        table=[("pop the {name}", "open the {name}")],
        edits=[("crack the {name}", "open the {name}")],
        requests=["let me in", "open the hatchy", "pop the bay", "crack the bay"],
        answers=["no"],
        nbest=[("open the hatchy", ["open the bay"])],
        confirm="guesses",
    )
    outcome = safety.run(scenario)
    assert not outcome.violations, [v.__dict__ for v in outcome.violations]
    assert outcome.sensitive_asked >= 4, outcome  # the routine, the learned name, the rule, the edit
    careless = safety.Scenario(**{**scenario.__dict__, "confirm": "off"})
    assert any(v.path.startswith(("request", "rewrite")) for v in safety.run(careless).violations)
