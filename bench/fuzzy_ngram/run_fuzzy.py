#!/usr/bin/env python3
"""Run hassil's n-gram fuzzy matcher (hassil 3.8.1) over JSONL requests.

This script runs INSIDE the pinned virtualenv created by ``setup.sh``
(hassil==3.8.1, home-assistant-intents==2026.6.1). It must not be imported by
the main project, which pins a newer hassil without ``hassil.fuzzy``.

Protocol: one JSON request per stdin line, one JSON response per stdout line,
same order. Request::

    {"id": str, "text": str, "context_area": str|null, "language": "en" (optional),
     "home": {"areas":    [{"id","name","aliases":[...],"floor": id|null}],
              "floors":   [{"id","name","aliases":[...]}],
              "entities": [{"id","name","aliases":[...],"domain","area": id|null,
                            "device_class": str|null}]}}

Response::

    {"id", "matched": bool, "intent": str|null, "slots": {slot: value},
     "score": float|null, "error": str|null,
     "slot_texts": {slot: text as found in the input},
     "ids": {"name": [entity ids], "area": area id, "floor": floor id},
     "entity_ids": [approximate resolved targets],
     "name_domain": str|null, "response": str|null, "elapsed_ms": float}

Only the fuzzy stage is reproduced (no strict matching). The construction of
the matcher mirrors Home Assistant's default conversation agent from the
releases that shipped FuzzyNgramMatcher (2025.7 .. 2026.x):

* ``DefaultAgent._load_intents``: ``FuzzyNgramMatcher(intents=..., intent_models=
  {name: Sqlite3NgramModel(order, words={w: str(id)}, database_path)},
  intent_slot_list_names=fuzzy_config.slot_list_names, slot_combinations=
  {intent: {combo: SlotCombinationInfo(context_area, name_domains or None)}},
  domain_keywords=fuzzy_info.domain_keywords, stop_words=fuzzy_info.stop_words)``
* ``DefaultAgent._make_slot_lists`` + ``_load_fuzzy_matchers``: the matcher is
  rebuilt with ``slot_lists={"area", "name", "floor"}`` built from the home.
* ``DefaultAgent._recognize_fuzzy``: ``matcher.match(text, context_area=
  <satellite area name>)`` and the response key lookup in ``fuzzy_responses``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import time
from collections import OrderedDict
from typing import Any

from hassil.fuzzy import FuzzyNgramMatcher, SlotCombinationInfo
from hassil.intents import Intents, SlotList, TextSlotList
from hassil.ngram import Sqlite3NgramModel
from hassil.util import normalize_text, remove_punctuation
from home_assistant_intents import (
    get_fuzzy_config,
    get_fuzzy_language,
    get_fuzzy_languages,
    get_intents,
)

_LOGGER = logging.getLogger("run_fuzzy")

# HA: DEFAULT_EXPOSED_ATTRIBUTES = {"device_class"} -> put into the name context
_EXPOSED_ATTRIBUTES = ("device_class",)

_HOME_CACHE_SIZE = 8


class RequestTimeout(Exception):
    """A single request took too long."""


# -----------------------------------------------------------------------------
# Language-level resources (HA: DefaultAgent._load_intents)
# -----------------------------------------------------------------------------


class LanguageResources:
    """Intents, n-gram models and fuzzy config for one language (loaded once)."""

    def __init__(self, language: str) -> None:
        intents_dict = get_intents(language)
        if not intents_dict:
            raise ValueError(f"no intents for language {language!r}")

        fuzzy_info = get_fuzzy_language(language)
        if fuzzy_info is None:
            raise ValueError(f"no fuzzy models for language {language!r}")

        fuzzy_config = get_fuzzy_config()

        self.language = language
        self.intents = Intents.from_dict(intents_dict)
        self.fuzzy_responses = fuzzy_info.responses
        self.intent_models = {
            intent_name: Sqlite3NgramModel(
                order=fuzzy_model.order,
                words={word: str(word_id) for word, word_id in fuzzy_model.words.items()},
                database_path=fuzzy_model.database_path,
            )
            for intent_name, fuzzy_model in fuzzy_info.ngram_models.items()
        }
        self.intent_slot_list_names = fuzzy_config.slot_list_names
        self.slot_combinations = {
            intent_name: {
                combo_key: SlotCombinationInfo(
                    context_area=combo_info.context_area,
                    name_domains=(set(combo_info.name_domains) if combo_info.name_domains else None),
                )
                for combo_key, combo_info in intent_combos.items()
            }
            for intent_name, intent_combos in fuzzy_config.slot_combinations.items()
        }
        self.domain_keywords = fuzzy_info.domain_keywords
        self.stop_words = fuzzy_info.stop_words

        # Keyword (tf-idf like) scores depend only on the models + stop words,
        # so compute them once and share them between per-home matchers.
        self._keyword_scores: dict[str, dict[str, float]] | None = None

    def make_matcher(self, slot_lists: dict[str, SlotList]) -> FuzzyNgramMatcher:
        """HA: DefaultAgent._load_fuzzy_matchers (rebuild with the home's lists)."""
        matcher = FuzzyNgramMatcher(
            intents=self.intents,
            intent_models=self.intent_models,
            intent_slot_list_names=self.intent_slot_list_names,
            slot_combinations=self.slot_combinations,
            domain_keywords=self.domain_keywords,
            stop_words=self.stop_words,
            slot_lists=slot_lists,
        )
        if self._keyword_scores is None:
            matcher._build_keyword_scores()  # pylint: disable=protected-access
            self._keyword_scores = matcher._keyword_scores  # pylint: disable=protected-access
        else:
            matcher._keyword_scores = self._keyword_scores  # pylint: disable=protected-access
        return matcher


# -----------------------------------------------------------------------------
# Home-level resources (HA: DefaultAgent._make_slot_lists)
# -----------------------------------------------------------------------------


def _clean(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _aliases(obj: dict[str, Any]) -> list[str]:
    return [a for a in (_clean(x) for x in (obj.get("aliases") or [])) if a]


class HomeIndex:
    """Slot lists + lookup tables for one home."""

    def __init__(self, home: dict[str, Any]) -> None:
        if not isinstance(home, dict):
            raise ValueError("'home' must be an object")

        for key in ("areas", "floors", "entities"):
            value = home.get(key)
            if value is not None and not isinstance(value, list):
                raise ValueError(f"home.{key} must be a list")
            for item in value or []:
                if not isinstance(item, dict):
                    raise ValueError(f"home.{key} items must be objects")
                if item.get("aliases") is not None and not isinstance(item["aliases"], list):
                    raise ValueError(f"home.{key}[].aliases must be a list")

        self.areas: list[dict[str, Any]] = list(home.get("areas") or [])
        self.floors: list[dict[str, Any]] = list(home.get("floors") or [])
        self.entities: list[dict[str, Any]] = list(home.get("entities") or [])

        # Areas: (name, name) and (alias, alias) -- HA keeps the alias as value.
        area_names: list[tuple[str, str]] = []
        self.area_id_by_text: dict[str, str] = {}
        self.area_name_by_id: dict[str, str] = {}
        self.area_floor: dict[str, str | None] = {}
        for area in self.areas:
            name = _clean(area.get("name"))
            area_id = _clean(area.get("id")) or name
            self.area_floor[area_id] = area.get("floor")
            if name:
                area_names.append((name, name))
                self.area_name_by_id[area_id] = name
                self.area_id_by_text.setdefault(name.casefold(), area_id)
            for alias in _aliases(area):
                area_names.append((alias, alias))
                self.area_id_by_text.setdefault(alias.casefold(), area_id)

        # Floors: (name, name) and (alias, floor name).
        floor_names: list[tuple[str, str]] = []
        self.floor_id_by_text: dict[str, str] = {}
        for floor in self.floors:
            name = _clean(floor.get("name"))
            floor_id = _clean(floor.get("id")) or name
            if not name:
                continue
            floor_names.append((name, name))
            self.floor_id_by_text.setdefault(name.casefold(), floor_id)
            for alias in _aliases(floor):
                floor_names.append((alias, name))
                self.floor_id_by_text.setdefault(alias.casefold(), floor_id)

        # Entities: aliases first, then the name; value == spoken text,
        # context = {"domain", "device_class"} (HA: _get_entity_name_tuples).
        entity_names: list[tuple[str, str, dict[str, Any]]] = []
        for entity in self.entities:
            context: dict[str, Any] = {"domain": _clean(entity.get("domain"))}
            for attr in _EXPOSED_ATTRIBUTES:
                if entity.get(attr):
                    context[attr] = entity[attr]
            for alias in _aliases(entity):
                entity_names.append((alias, alias, context))
            name = _clean(entity.get("name"))
            if name:
                entity_names.append((name, name, context))

        self.slot_lists: dict[str, SlotList] = {
            "area": TextSlotList.from_tuples(area_names, allow_template=False),
            "name": TextSlotList.from_tuples(entity_names, allow_template=False),
            "floor": TextSlotList.from_tuples(floor_names, allow_template=False),
        }

    def resolve_context_area(self, context_area: Any) -> str | None:
        """Return the area *name* (HA passes satellite_area.name)."""
        text = _clean(context_area)
        if not text:
            return None
        if text in self.area_name_by_id:
            return self.area_name_by_id[text]
        area_id = self.area_id_by_text.get(text.casefold())
        if area_id is not None:
            return self.area_name_by_id.get(area_id, text)
        return text

    def entity_ids_for_name(self, value: str, domain: str | None) -> list[str]:
        key = value.casefold()
        out = []
        for entity in self.entities:
            names = [_clean(entity.get("name")), *_aliases(entity)]
            if key not in (n.casefold() for n in names if n):
                continue
            if domain and _clean(entity.get("domain")) != domain:
                continue
            out.append(_clean(entity.get("id")))
        return out

    def resolve_targets(
        self,
        name_ids: list[str] | None,
        domain: str | None,
        device_class: str | None,
        area_id: str | None,
        floor_id: str | None,
    ) -> list[str]:
        """Approximate target resolution (not HA's async_match_targets)."""
        out = []
        for entity in self.entities:
            eid = _clean(entity.get("id"))
            if name_ids is not None and eid not in name_ids:
                continue
            if domain and _clean(entity.get("domain")) != domain:
                continue
            if device_class and entity.get("device_class") != device_class:
                continue
            ent_area = entity.get("area")
            if area_id and ent_area != area_id:
                continue
            if floor_id and self.area_floor.get(ent_area) != floor_id:
                continue
            out.append(eid)
        return out


# -----------------------------------------------------------------------------


class FuzzyRunner:
    """Caches language resources and per-home matchers."""

    def __init__(self, default_language: str = "en", max_interpretations: int = 250_000) -> None:
        self.default_language = default_language
        self.max_interpretations = max_interpretations
        self._languages: dict[str, LanguageResources] = {}
        self._homes: OrderedDict[tuple[str, str], tuple[HomeIndex, FuzzyNgramMatcher]] = OrderedDict()
        self._last_home_obj: Any = None
        self._last_home_key: str | None = None

    def _language(self, language: str) -> LanguageResources:
        res = self._languages.get(language)
        if res is None:
            if language not in get_fuzzy_languages():
                raise ValueError(f"fuzzy matching not available for language {language!r}")
            start = time.monotonic()
            res = LanguageResources(language)
            self._languages[language] = res
            _LOGGER.info("loaded %s resources in %.2fs", language, time.monotonic() - start)
        return res

    def _home_key(self, home: Any) -> str:
        if home is self._last_home_obj and self._last_home_key is not None:
            return self._last_home_key
        key = hashlib.sha256(json.dumps(home, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        self._last_home_obj, self._last_home_key = home, key
        return key

    def _home(self, language: str, home: Any) -> tuple[HomeIndex, FuzzyNgramMatcher]:
        cache_key = (language, self._home_key(home))
        cached = self._homes.get(cache_key)
        if cached is not None:
            self._homes.move_to_end(cache_key)
            return cached
        res = self._language(language)
        start = time.monotonic()
        index = HomeIndex(home)
        matcher = res.make_matcher(index.slot_lists)
        _LOGGER.info("built matcher for home %s in %.2fs", cache_key[1][:12], time.monotonic() - start)
        self._homes[cache_key] = (index, matcher)
        while len(self._homes) > _HOME_CACHE_SIZE:
            self._homes.popitem(last=False)
        return index, matcher

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        text = request.get("text")
        if not isinstance(text, str):
            raise ValueError("'text' must be a string")
        language = request.get("language") or self.default_language
        home = request.get("home")
        if home is None:
            home = {}
        res = self._language(language)
        index, matcher = self._home(language, home)
        context_area = index.resolve_context_area(request.get("context_area"))

        if not text.split():
            raise ValueError("empty text")  # hassil divides by the token count
        n_interp = _count_interpretations(matcher, text)
        if self.max_interpretations and n_interp > self.max_interpretations:
            # FuzzyNgramMatcher materialises every segmentation of the text into
            # slot spans (exponential in length); refuse instead of eating RAM.
            raise ValueError(
                f"too many interpretations ({n_interp} > {self.max_interpretations}); "
                "hassil would enumerate them all"
            )

        # HA: DefaultAgent._recognize_fuzzy
        result = matcher.match(text, context_area=context_area)
        if result is None:
            return _no_match()

        response_key = "default"
        if res.fuzzy_responses:
            domain = ""
            if "name" in result.slots:
                domain = result.name_domain
            elif "domain" in result.slots:
                domain = result.slots["domain"].value
            slot_combo = tuple(sorted(result.slots))
            if (intent_responses := res.fuzzy_responses.get(result.intent_name)) and (
                combo_responses := intent_responses.get(slot_combo)
            ):
                response_key = combo_responses.get(domain, response_key)

        slots = {name: sv.value for name, sv in result.slots.items()}
        slot_texts = {name: sv.text for name, sv in result.slots.items()}

        ids: dict[str, Any] = {}
        name_ids: list[str] | None = None
        if "name" in slots:
            name_ids = index.entity_ids_for_name(str(slots["name"]), result.name_domain)
            ids["name"] = name_ids
        area_id = None
        if "area" in slots:
            area_id = index.area_id_by_text.get(str(slots["area"]).casefold())
            ids["area"] = area_id
        floor_id = None
        if "floor" in slots:
            floor_id = index.floor_id_by_text.get(str(slots["floor"]).casefold())
            ids["floor"] = floor_id

        domain_filter = result.name_domain or (str(slots["domain"]) if "domain" in slots else None)
        entity_ids: list[str] = []
        if name_ids is not None or domain_filter:
            entity_ids = index.resolve_targets(
                name_ids,
                domain_filter,
                str(slots["device_class"]) if "device_class" in slots else None,
                area_id,
                floor_id,
            )

        return {
            "matched": True,
            "intent": result.intent_name,
            "slots": slots,
            "slot_texts": slot_texts,
            "ids": ids,
            "entity_ids": entity_ids,
            "name_domain": result.name_domain,
            "response": response_key,
            "score": float(result.score) if result.score is not None else None,
        }


def _count_interpretations(matcher: FuzzyNgramMatcher, text: str) -> int:
    """Number of segmentations FuzzyNgramMatcher.match would enumerate.

    Mirrors the span search at the top of ``match`` and the recursion in
    ``_find_interpretations`` (hassil 3.8.1 fuzzy.py), counting instead of
    building lists.
    """
    text_norm = remove_punctuation(normalize_text(text)).lower()
    tokens = text_norm.split()
    starts: dict[int, set] = {}
    for end_idx, span_text, _value in matcher._trie.find(  # pylint: disable=protected-access
        text_norm, unique=False, word_boundaries=True
    ):
        start_idx = end_idx - len(span_text)
        tok_start = len(text_norm[:start_idx].split())
        tok_end = tok_start + len(text_norm[start_idx:end_idx].split())
        starts.setdefault(tok_start, set()).add(tok_end)
    n = len(tokens)
    count = [0] * (n + 1)
    count[n] = 1
    for pos in range(n - 1, -1, -1):
        count[pos] = count[pos + 1] + sum(count[end] for end in starts.get(pos, ()) if end <= n)
    return count[0]


def _no_match(error: str | None = None) -> dict[str, Any]:
    return {
        "matched": False,
        "intent": None,
        "slots": {},
        "slot_texts": {},
        "ids": {},
        "entity_ids": [],
        "name_domain": None,
        "response": None,
        "score": None,
        "error": error,
    }


def _alarm_handler(signum, frame):  # pragma: no cover - signal path
    raise RequestTimeout()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--language", default="en")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=60.0,
        help="seconds per request before it is abandoned with an error row (0 = none)",
    )
    parser.add_argument(
        "--max-interpretations",
        type=int,
        default=250_000,
        help="refuse texts whose span segmentations exceed this (0 = no limit)",
    )
    parser.add_argument("--preload", action="store_true", help="load models before reading")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="run_fuzzy: %(message)s",
    )

    runner = FuzzyRunner(default_language=args.language, max_interpretations=args.max_interpretations)
    if args.preload:
        runner._language(args.language)  # pylint: disable=protected-access

    use_alarm = args.request_timeout > 0 and hasattr(signal, "setitimer")
    if use_alarm:
        signal.signal(signal.SIGALRM, _alarm_handler)

    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        start = time.monotonic()
        req_id: Any = None
        row: dict[str, Any]
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request must be a JSON object")
            req_id = request.get("id")
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, args.request_timeout)
            try:
                row = runner.handle(request)
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            row["error"] = None
        except RequestTimeout:
            row = _no_match(error=f"timeout after {args.request_timeout}s")
        except Exception as err:  # pylint: disable=broad-except
            row = _no_match(error=f"{type(err).__name__}: {err}")
        row = {"id": req_id, **row, "elapsed_ms": round((time.monotonic() - start) * 1000, 3)}
        try:
            out.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        except Exception as err:  # pylint: disable=broad-except
            row = {"id": str(req_id), **_no_match(error=f"serialization: {err}")}
            out.write(json.dumps(row) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
