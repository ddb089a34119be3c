"""Check that the fast NLU path returns exactly what Home Assistant's plain, uncached call returns.

    python bench/experiments/nlu_equivalence.py                      # >= 5,000 texts from several homes
    python bench/experiments/nlu_equivalence.py --households 4 --days 1

(from the repository root, with the project's Python: ``selflearn`` installed).

The texts are the ones a simulation really sends to the NLU (``noisy`` ASR output, the clean
counterfactual texts, background speech), collected by running the simulator; each is also
tried in a second, different home, so a cache entry leaking across homes would show. For
every (text, home, satellite area):

* **reference** -- the code as it was before the speed-ups, written out plainly: hassil's
  ``recognize_best`` over all of ``home_assistant_intents`` with the home's *full* area / name /
  floor lists, then the gazetteer, then the unmatched-entity pass over all intents; no cache;
* **fast** -- :class:`selflearn.assistant.nlu.HomeAssistantNlu` as the simulator uses it
  (result cache, names restricted to those in the text, template pre-filter), called in the
  simulation's order so its caches are as warm as in a real run.

The two :class:`NluResult` values (matched, intent, slots, confidence, matcher, resolved ids,
unmatched slot texts) must be equal, and so must the response the assistant gives from them.
The reference runs in a separate, freshly started process, so nothing the fast path patches
or caches (memoized gazetteer searches, compiled templates) can reach it.

And hassil's matcher against its compiled port (:mod:`selflearn.assistant.fastmatch`): for
every case, both passes (strict, and with unmatched entities) over the templates the
pre-filter keeps (:func:`selflearn.assistant.nlu.template_filter`, the one the NLU uses),
``hassil.recognize_all`` and ``fastmatch.recognize_all`` must yield the same results in the same
order -- intent, template, entities (value, text, span, flags), unmatched entities, captures,
context, response key and literal text matched.
Exits 1 on any difference. ``tests/test_nlu_prefilter.py`` is a small version of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

from hassil import recognize_all, recognize_best
from hassil.models import UnmatchedRangeEntity, UnmatchedTextEntity
from hassil.recognize import MISSING_ENTITY

from selflearn.assistant import fastmatch
from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import NO_MATCH_RESPONSE, execute
from selflearn.assistant.nlu import (
    HomeAssistantNlu,
    NluResult,
    load_intents,
    slot_lists_for,
    template_filter,
)
from selflearn.assistant.pipeline import AssistantConfig
from selflearn.assistant.resolve import resolve
from selflearn.core.home import Home
from selflearn.core.schema import NluTrace, SlotValue
from selflearn.simulation.simulator import SimulationConfig, simulate

ROOT = Path(__file__).resolve().parents[2]
"""The repository (``--work`` defaults to its ``out/nlu-equivalence``)."""


class ReferenceNlu:
    """Home Assistant's English recognition, uncached and unoptimised (the pre-speed-up code)."""

    def __init__(self) -> None:
        self.intents = load_intents("en")
        self._gazetteers: dict[str, Any] = {}

    def recognize(self, text: str, home: Home, context_area: str | None) -> NluResult:
        lists = slot_lists_for(home)  # every name of the home
        area = home.area_by_id.get(context_area or "")
        context = {"area": {"value": area.area_id, "text": area.name}} if area else None
        strict = self._strict(text, lists, context)
        if strict.trace.matched:
            return strict
        gaz = self._gazetteer(text, home, context_area)
        if gaz.trace.matched:
            return gaz
        return self._unmatched(text, lists, context)

    def _strict(self, text: str, lists: dict[str, Any], context: dict[str, Any] | None) -> NluResult:
        res = recognize_best(
            text, self.intents, slot_lists=lists, intent_context=context, language="en", best_slot_name="name"
        )
        if res is None:
            return NluResult(NluTrace(matched=False, matcher="none"))
        slots = {name: _plain(ent.value) for name, ent in res.entities.items()}
        return NluResult(
            NluTrace(matched=True, intent=res.intent.name, slots=slots, confidence=1.0, matcher="strict")
        )

    def _gazetteer(self, text: str, home: Home, context_area: str | None) -> NluResult:
        from gazetteer_matcher import GazetteerMatcher

        matcher = self._gazetteers.get(home.fingerprint)
        if matcher is None:
            matcher = self._gazetteers[home.fingerprint] = GazetteerMatcher(home=home.to_gazetteer())
        area = home.area_by_id.get(context_area or "")
        interp = matcher.interpret(text, context_area=area.name if area else None)
        if not interp.accepted or not interp.frames:
            return NluResult(NluTrace(matched=False, matcher="none"))
        frame = interp.frames[0]
        slots: dict[str, SlotValue] = {}
        ids: list[str] = []
        for key, value in frame.slots.items():
            if key == "name" and isinstance(value, str) and value in home.entity_by_id:
                ids.append(value)
                slots[key] = home.entity_by_id[value].name
            elif key == "area" and isinstance(value, str) and value in home.area_by_id:
                slots[key] = value
            else:
                slots[key] = _plain(value)
        confidence = max(0.3, 0.9 - 0.2 * frame.fuzzy_count)
        return NluResult(
            NluTrace(
                matched=True, intent=frame.intent, slots=slots, confidence=confidence, matcher="gazetteer"
            ),
            target_ids=tuple(ids),
        )

    def _unmatched(self, text: str, lists: dict[str, Any], context: dict[str, Any] | None) -> NluResult:
        best: Any = None
        best_key: tuple[int, int, int, int] | None = None
        for res in recognize_all(
            text,
            self.intents,
            slot_lists=lists,
            intent_context=context,
            allow_unmatched_entities=True,
            language="en",
        ):
            if res.text_chunks_matched < 1:
                continue
            n_unmatched = n_ranges = 0
            for ent in res.unmatched_entities_list:
                if isinstance(ent, UnmatchedTextEntity):
                    if ent.text != MISSING_ENTITY:
                        n_unmatched += 1
                elif isinstance(ent, UnmatchedRangeEntity):
                    n_unmatched += 1
                    n_ranges += 1
                else:
                    n_unmatched += 1
            key = (len(res.entities_list), -n_unmatched, n_ranges, res.text_chunks_matched)
            if best_key is None or key > best_key:
                best, best_key = res, key
        if best is None:
            return NluResult(NluTrace(matched=False, matcher="none"))
        unmatched = {
            name: str(getattr(ent, "text", getattr(ent, "value", ""))).strip()
            for name, ent in best.unmatched_entities.items()
            if getattr(ent, "text", None) != MISSING_ENTITY
        }
        if not unmatched:
            return NluResult(NluTrace(matched=False, matcher="none"))
        return NluResult(
            NluTrace(matched=False, intent=best.intent.name, matcher="none"), unmatched=unmatched
        )


def _plain(value: Any) -> SlotValue:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def collect_calls(households: int, days: float, seed: int, work: Path) -> list[tuple[str, Home, str | None]]:
    """Every (text, home, area) a ``noisy``-ASR simulation sends to the NLU, in order."""
    calls: list[tuple[str, Home, str | None]] = []
    original = HomeAssistantNlu.recognize

    def spy(
        self: HomeAssistantNlu,
        text: str,
        home: Home,
        context_area: str | None = None,
        explain_failures: bool = True,
    ) -> NluResult:
        calls.append((text, home, context_area))
        return original(self, text, home, context_area, explain_failures)

    HomeAssistantNlu.recognize = spy  # type: ignore[method-assign]
    try:
        config = SimulationConfig(
            households=households, days=days, seed=seed, workers=1, assistant=AssistantConfig(asr="noisy")
        )
        simulate(config, work)
    finally:
        HomeAssistantNlu.recognize = original  # type: ignore[method-assign]
    return calls


def response(result: NluResult, home: Home, context_area: str | None) -> str:
    """What the assistant would answer from this NLU result (on a fresh copy of the home)."""
    if not result.trace.matched and not result.unmatched:
        return NO_MATCH_RESPONSE
    resolution = resolve(
        result.trace.intent,
        dict(result.trace.slots),
        home,
        context_area,
        preset_ids=result.target_ids,
        unmatched=result.unmatched,
    )
    from datetime import UTC, datetime

    state = HomeState.initial(home)
    outcome = execute(
        result.trace.intent or "",
        dict(result.trace.slots),
        resolution,
        state,
        datetime(2026, 1, 5, 12, tzinfo=UTC),
    )
    return outcome.trace.response_text


_REFERENCE: ReferenceNlu | None = None


def _reference_chunk(cases: list[tuple[str, Home, str | None]]) -> tuple[list[NluResult], float]:
    """Reference results for ``cases`` (in a worker process) and the seconds they took."""
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = ReferenceNlu()
    started = time.perf_counter()
    results = [_REFERENCE.recognize(text, home, area) for text, home, area in cases]
    return results, time.perf_counter() - started


def _dump(results: Any) -> list[Any]:
    """Everything a hassil result holds, comparable with ``==``."""
    return [
        (
            r.intent.name,
            id(r.intent_data),
            id(r.intent_sentence),
            r.text_chunks_matched,
            r.response,
            r.context,
            r.intent_metadata,
            r.original_text,
            [dataclasses.astuple(e) for e in r.entities_list],
            sorted(r.entities),
            [(type(e).__name__, dataclasses.astuple(e)) for e in r.unmatched_entities_list],
            sorted(r.unmatched_entities),
            [dataclasses.astuple(c) for c in r.captures_list],
        )
        for r in results
    ]


def matcher_difference(fast: HomeAssistantNlu, text: str, home: Home, area: str | None) -> str | None:
    """Where hassil and its compiled port disagree on ``text`` (``None``: nowhere)."""
    forms, lists, _, context = fast.hassil_inputs(text, home, area)
    prefilter = template_filter()  # the shared pre-filter every HomeAssistantNlu uses
    for unmatched in (False, True):
        intents = prefilter.candidates(text, lists, allow_unmatched_entities=unmatched, forms=forms)
        kwargs: dict[str, Any] = {
            "slot_lists": lists,
            "intent_context": context,
            "allow_unmatched_entities": unmatched,
            "language": "en",
        }
        want = _dump(recognize_all(text, intents, **kwargs))
        got = _dump(fastmatch.recognize_all(text, intents, **kwargs))
        if got != want:
            return f"{'unmatched' if unmatched else 'strict'} pass: hassil {want}\n  compiled {got}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=12)
    parser.add_argument("--days", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "nlu-equivalence")
    args = parser.parse_args()

    started = time.perf_counter()
    calls = collect_calls(args.households, args.days, args.seed, args.work)
    homes = list({home.fingerprint: home for _, home, _ in calls}.values())
    # Each text also in the next home (different names, areas and devices), from one of its areas.
    crossed = []
    for i, (text, home, _) in enumerate(calls):
        other = homes[(homes.index(home) + 1) % len(homes)]
        if other is not home:
            crossed.append((text, other, other.areas[i % len(other.areas)].area_id if i % 3 else None))
    cases = calls + crossed
    print(
        f"collected {len(calls):,} NLU calls from {len(homes)} homes "
        f"({time.perf_counter() - started:.1f} s); checking {len(cases):,} cases"
    )

    # The reference in a fresh process (nothing patched), while this one runs the fast path.
    chunk = 500
    pool = mp.get_context("spawn").Pool(1)
    pending = pool.map_async(_reference_chunk, [cases[i : i + chunk] for i in range(0, len(cases), chunk)])
    pool.close()

    fast = HomeAssistantNlu()
    if not fastmatch.SUPPORTED:  # what HomeAssistantNlu checks to use the compiled matcher
        print(f"note: hassil is not {fastmatch.HASSIL_VERSION}; the fast path uses hassil's own matcher")
    t_fast = 0.0
    got_all = []
    for text, home, area in cases:
        t0 = time.perf_counter()
        got = fast.recognize(text, home, area)
        # What the simulator's counterfactual asks for: the same, without explaining failures.
        quiet = fast.recognize(text, home, area, explain_failures=False)
        t_fast += time.perf_counter() - t0
        got_all.append((got, quiet))
    hits, misses = fast.cache_info()

    matcher_differences = 0
    t_matcher = time.perf_counter()
    if fastmatch.SUPPORTED:
        for text, home, area in cases:
            difference = matcher_difference(fast, text, home, area)
            if difference is not None:
                matcher_differences += 1
                if matcher_differences <= 5:
                    print(f"MATCHER DIFFERENT for {text!r} in {home.home_id} (area {area}): {difference}")
    t_matcher = time.perf_counter() - t_matcher

    chunks = pending.get()
    pool.join()
    wanted = [result for results, _ in chunks for result in results]
    t_ref = sum(seconds for _, seconds in chunks)

    differences = 0
    by_matcher: dict[str, int] = {}
    for (text, home, area), (got, quiet), want in zip(cases, got_all, wanted, strict=True):
        key = want.trace.matcher + ("+unmatched" if want.unmatched else "")
        by_matcher[key] = by_matcher.get(key, 0) + 1
        quiet_ok = quiet == want if want.trace.matched else not quiet.trace.matched
        if got != want or not quiet_ok or response(got, home, area) != response(want, home, area):
            differences += 1
            if differences <= 10:
                print(f"DIFFERENT for {text!r} in {home.home_id} (area {area}):\n  fast {got}\n  ref  {want}")
    print(f"results by reference matcher: {dict(sorted(by_matcher.items()))}")
    print(
        f"fast path {t_fast:.1f} s ({1000 * t_fast / len(cases):.2f} ms/case with its counterfactual "
        f"call, cache hits {hits:,} / {hits + misses:,}); reference {t_ref:.1f} s "
        f"({1000 * t_ref / len(cases):.2f} ms/case); hassil vs compiled matcher {t_matcher:.1f} s"
    )
    if differences or matcher_differences:
        print(
            f"FAIL: {differences:,} of {len(cases):,} cases differ; the compiled matcher differs from "
            f"hassil's on {matcher_differences:,}"
        )
        return 1
    matcher_note = (
        f"; compiled matcher identical to hassil's on all {len(cases):,} (both passes)"
        if fastmatch.SUPPORTED
        else ""
    )
    print(f"OK: all {len(cases):,} cases identical (NLU result and response){matcher_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
