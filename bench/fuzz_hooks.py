"""schemathesis hooks for fuzzing selflearn's HTTP API (``bench/reliability.py fuzz``,
``tests/test_fuzz_api.py``).

One thing a JSON schema cannot say: a home's floors, areas and entities refer to each other by id
(an area's ``floor`` is one of the home's floors, an entity's ``area`` one of its areas, entity ids
are unique), and a dialogue request's ``turn`` carries the request's own ``turn_id`` and
``household_id``. The service refuses a request that breaks these with a 422 naming the field
(tested on its own in ``tests/test_fuzz_api.py``); this hook makes the *generated* requests keep
them, so that schema-valid cases get past that check and exercise the rest of the service. It
changes nothing else: a case the fuzzer made invalid on purpose stays invalid.

Loaded by the schemathesis CLI with ``SCHEMATHESIS_HOOKS=fuzz_hooks`` (``bench`` on the path); the
tests call :func:`consistent` themselves.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis


def consistent_home(home: Any) -> Any:
    """``home`` with its references made to hold (a home that is not a well-formed JSON object of
    lists of objects is returned as it is)."""
    if not isinstance(home, dict):
        return home
    floors, areas, entities = (home.get(key, []) for key in ("floors", "areas", "entities"))
    if not all(
        isinstance(part, list) and all(isinstance(x, dict) for x in part)
        for part in (floors, areas, entities)
    ):
        return home
    floor_ids = {f.get("id") for f in floors if isinstance(f.get("id"), str)}
    for area in areas:
        if isinstance(area.get("floor"), str) and area["floor"] not in floor_ids:
            area["floor"] = None
    area_ids = {a.get("id") for a in areas if isinstance(a.get("id"), str)}
    seen: set[str] = set()
    kept = []
    for entity in entities:
        ident = entity.get("id")
        if isinstance(ident, str):
            if ident in seen:
                continue
            seen.add(ident)
        if isinstance(entity.get("area"), str) and entity["area"] not in area_ids:
            entity["area"] = None
        kept.append(entity)
    if "entities" in home:
        home["entities"] = kept
    return home


def consistent(path: str, body: Any) -> Any:
    """The body of a request to ``path`` with the cross-references it must keep made to hold."""
    if path.startswith("/v1/homes/"):
        return consistent_home(body)
    if isinstance(body, dict):
        if "home" in body:
            body["home"] = consistent_home(body["home"])
        turn = body.get("turn")
        if path == "/v1/dialogue" and isinstance(turn, dict):
            for key in ("turn_id", "household_id"):
                if key in body:
                    turn[key] = body[key]
    return body


def misflagged(case: schemathesis.Case[Any]) -> bool:
    """Whether schemathesis marks a case negative that it made as its *positive* default (its
    coverage phase flips a location's mode when it tried and failed to negate it; seen on the
    optional body of ``POST /v1/admin/reload``): the negative-data check must not judge it."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    description = getattr(meta.phase.data, "description", None) or ""
    return "positive test case" in description.lower()


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]
) -> None:
    """Every phase's cases (examples, coverage, fuzzing, stateful) pass through here."""
    case.body = consistent(case.operation.path, case.body)


EXCUSED_REVIEW = (
    "a verdict is checked the way the rewriter would use it (an edited target must parse in the home "
    "and differ from the request): a schema-valid verdict may be refused, with why"
)
EXCUSED_FLAG = "schemathesis marked its own default positive case negative (optional request body)"


def excused(case: schemathesis.Case[Any], code: str) -> str | None:
    """Why a failure of ``code`` on ``case`` is not the service's (None: it is)."""
    if code == "ST201" and misflagged(case):
        return EXCUSED_FLAG
    if code == "ST202" and case.operation.label == "POST /v1/reviews":
        return EXCUSED_REVIEW
    return None


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext, failure: Any, case: schemathesis.Case[Any], response: Any
) -> bool:
    """Drop the failures :func:`excused` names, each written to ``$SELFLEARN_FUZZ_EXCUSED`` (a JSON
    line per failure) so that the benchmark reports them rather than hides them."""
    code = str(getattr(failure, "code", ""))
    why = excused(case, code)
    if why is None:
        return True
    where = os.environ.get("SELFLEARN_FUZZ_EXCUSED")
    if where:
        with open(where, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"code": code, "operation": case.operation.label, "why": why}) + "\n")
    return False
