"""What the home and the assistant's language say about a turn's words.

Three groups of failure point features, all computed from the logs plus the assistant's own
configuration -- the ``homes`` table (each home's configured entity, area and floor names and
aliases) and Home Assistant's sentence templates -- never from simulation truth:

* **names** (:data:`NAME_FEATURES`): the longest name entity resolution left unresolved, compared
  with the home's configured names (an unknown device name the user really uses is an ``er``
  defect; a chunk of a misparsed sentence is ``nlu``), and how much of the request is made of
  words the assistant's language or the home knows at all;
* **language** (:data:`LANGUAGE_FEATURES`): the request, delexicalised (the home's names become
  ``<name>`` / ``<area>``, runs of number words ``<num>``), under the assistant's domain language
  (:func:`selflearn.assistant.lm.domain_sentences`, the sentence space its templates accept): the
  share of its bigrams and trigrams the domain has, and the closest domain sentence. A
  recognition error leaves a template-like request with one or two broken spots; a phrasing the
  templates do not cover is off-domain throughout;
* **recurrence** (:data:`RECURRENCE_FEATURES`): how many users and homes of the store said the
  same delexicalised request, and how often it worked for the others. A phrasing gap recurs
  across users; a garbled recognition rarely does.

Stores without a ``homes`` table (or turns of unknown homes) get nulls for the name features and
are delexicalised with the generic names only.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from selflearn.assistant.lm import (
    DEFAULT_AREAS,
    DEFAULT_FLOORS,
    DEFAULT_NAMES,
    domain_sentences,
)
from selflearn.core.home import Home, normalize_name
from selflearn.core.store import Store
from selflearn.core.text import number_to_words

DOMAIN_SENTENCES = 20000
"""Sentences sampled from the templates for the domain language (deterministic, seed 0)."""

_BATCH = 256
"""Requests scored together by :meth:`DomainLanguage.nearest_many` (a 256 x sentences matrix)."""

TEMPLATE_WORD_MIN = 3
"""A word occurring at least this often in the domain sentences, and not only inside the
generic names used to fill slots, counts as a template word."""

NAME_FEATURES: tuple[str, ...] = (
    "unres_entity_ratio",
    "unres_area_ratio",
    "unres_best_ratio",
    "unres_template_share",
    "unres_home_word_share",
    "unres_oov_share",
    "unres_contains_area",
    "unres_contains_entity",
    "text_oov_share",
    "text_oov_n",
    "text_home_word_share",
    "text_template_share",
    "next_has_unres",
    "next_unres_overlap",
)
"""Unresolved name vs the home's names (rapidfuzz ratio to the closest entity / area name, the
share of its words that are template words, home-name words or unknown, whether it contains a
whole configured area or entity name); the request's unknown words and home-name and template
words; whether the next turn of the session says the unresolved name again (in full, or the
share of its words)."""

LANGUAGE_FEATURES: tuple[str, ...] = (
    "lm_oov_share",
    "lm_bigram_seen",
    "lm_trigram_seen",
    "lm_bigram_unseen_n",
    "lm_longest_seen_share",
    "near_ratio",
    "near_word_edits",
    "near_word_edits_share",
    "alt_near_ratio",
    "alt_bigram_seen",
)
"""Delexicalised request under the domain language: words it lacks, share of bigrams / trigrams
it has, unseen bigrams, longest run of seen bigrams (share); the closest domain sentence
(rapidfuzz ratio, word edits, edits per word); the best n-best alternative's closest-sentence
ratio and bigram share."""

RECURRENCE_FEATURES: tuple[str, ...] = (
    "pattern_users",
    "pattern_homes",
    "pattern_success_others",
    "text_users",
    "text_success_others",
)
"""Distinct users and homes of the store that said the same delexicalised request, and the share
of the *other* turns with it that succeeded (null when there are none); the same for the exact
text."""

_WORD = re.compile(r"[a-z0-9']+")

_NUMBER_WORDS: frozenset[str] = frozenset(
    {w for n in range(101) for w in number_to_words(n).replace("-", " ").split()}
    | {"hundred", "thousand", "point", "half"}
)


def _words(text: str | None) -> list[str]:
    return _WORD.findall((text or "").lower())


def _by_length(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v}, key=lambda s: (-len(s), s)))


_GENERIC_NAMES = _by_length(normalize_name(n) for n in DEFAULT_NAMES)
_GENERIC_AREAS = _by_length(normalize_name(n) for n in (*DEFAULT_AREAS, *DEFAULT_FLOORS))


@dataclass(frozen=True)
class HomeNames:
    """A home's configured names, normalised (lower case, single spaces), longest first."""

    entities: tuple[str, ...]
    """Entity names and aliases."""
    areas: tuple[str, ...]
    """Area and floor names and aliases."""

    @classmethod
    def of(cls, home: Home) -> HomeNames:
        """The names of ``home``."""
        return cls(
            _by_length(normalize_name(n) for e in home.entities for n in e.spoken_names),
            _by_length(
                [normalize_name(n) for a in home.areas for n in (a.name, *a.aliases)]
                + [normalize_name(n) for f in home.floors for n in (f.name, *f.aliases)]
            ),
        )

    @property
    def words(self) -> frozenset[str]:
        """Every word of every name."""
        return frozenset(w for n in (*self.entities, *self.areas) for w in n.split())


def load_home_names(store: Store) -> dict[str, HomeNames]:
    """``home_id -> HomeNames`` from the store's ``homes`` table (empty if it has none)."""
    try:
        rows = store.query("SELECT home_id, config FROM homes").to_pylist()
    except Exception:  # a store without the table (older or foreign logs)
        return {}
    out: dict[str, HomeNames] = {}
    for row in rows:
        try:
            config = json.loads(row["config"])
            out[str(row["home_id"])] = HomeNames.of(Home.from_dict({**config, "home_id": row["home_id"]}))
        except (ValueError, TypeError, KeyError):
            continue  # a configuration this version cannot read gives null features
    return out


def delexicalise(text: str | None, names: Sequence[str], areas: Sequence[str]) -> list[str]:
    """Words of ``text`` with known names replaced by ``<name>`` and ``<area>`` (longest first,
    entity names before areas) and every run of number words by one ``<num>``."""
    padded = " " + " ".join(_words(text)) + " "
    for value in names:
        if f" {value} " in padded:
            padded = padded.replace(f" {value} ", " <name> ")
    for value in areas:
        if f" {value} " in padded:
            padded = padded.replace(f" {value} ", " <area> ")
    out: list[str] = []
    for word in padded.split():
        if word in _NUMBER_WORDS:
            if out and out[-1] == "<num>":
                continue
            out.append("<num>")
        else:
            out.append(word)
    return out


class DomainLanguage:
    """The assistant's sentence space, delexicalised: vocabulary, bigrams, trigrams, sentences.

    Built from :func:`selflearn.assistant.lm.domain_sentences` (Home Assistant's templates with
    generic names); deterministic. :func:`domain_language` caches one per process."""

    def __init__(self, n_sentences: int = DOMAIN_SENTENCES) -> None:
        raw = domain_sentences(n_sentences, seed=0)
        counts = Counter(w for s in raw for w in s.split())
        filler = {w for n in (*_GENERIC_NAMES, *_GENERIC_AREAS) for w in n.split()}
        self.words: frozenset[str] = frozenset(counts)
        """Every word of the raw domain sentences."""
        self.template_words: frozenset[str] = frozenset(
            w for w, c in counts.items() if c >= TEMPLATE_WORD_MIN and w not in filler
        )
        """Words the templates themselves use (not only the generic names)."""
        sentences = sorted({" ".join(delexicalise(s, _GENERIC_NAMES, _GENERIC_AREAS)) for s in raw})
        self.sentences: list[str] = sentences
        """Distinct delexicalised domain sentences."""
        self.vocabulary: frozenset[str] = frozenset(w for s in sentences for w in s.split())
        bigrams: set[tuple[str, ...]] = set()
        trigrams: set[tuple[str, ...]] = set()
        for sentence in sentences:
            w = ["<s>", *sentence.split(), "</s>"]
            bigrams.update(itertools.pairwise(w))
            trigrams.update(zip(w, w[1:], w[2:], strict=False))
        self.bigrams = frozenset(bigrams)
        self.trigrams = frozenset(trigrams)
        self._nearest: dict[str, tuple[float, float, float]] = {}

    def ngram_scores(self, words: Sequence[str]) -> tuple[float, float, float, float, float]:
        """(share of words outside the vocabulary, share of bigrams seen, share of trigrams seen,
        bigrams unseen, longest run of seen bigrams / bigrams) with sentence boundaries."""
        w = ["<s>", *words, "</s>"]
        seen = [b in self.bigrams for b in itertools.pairwise(w)]
        trigrams = list(zip(w, w[1:], w[2:], strict=False))
        run = best = 0
        for hit in seen:
            run = run + 1 if hit else 0
            best = max(best, run)
        return (
            sum(x not in self.vocabulary for x in words) / max(1, len(words)),
            sum(seen) / len(seen),
            sum(t in self.trigrams for t in trigrams) / max(1, len(trigrams)),
            float(len(seen) - sum(seen)),
            best / len(seen),
        )

    def nearest(self, words: Sequence[str]) -> tuple[float, float, float]:
        """(rapidfuzz ratio 0-1, word edits, word edits per word) to the closest domain sentence
        (the first of the best, in :attr:`sentences` order)."""
        key = " ".join(words)
        found = self._nearest.get(key)
        if found is None:
            match = process.extractOne(key, self.sentences, scorer=fuzz.ratio)
            found = self._scored(
                key, list(words), match[0] if match else None, float(match[1]) if match else 0.0
            )
        return found

    def nearest_many(self, keys: Iterable[str], workers: int = 1) -> dict[str, tuple[float, float, float]]:
        """:meth:`nearest` of many requests at once, each given as its words joined by single
        spaces: the ones not seen before are scored against every domain sentence together
        (rapidfuzz ``cdist``, ``workers`` threads), about five times faster per request than one
        by one, with the same answers."""
        out: dict[str, tuple[float, float, float]] = {}
        todo: list[str] = []
        for key in dict.fromkeys(keys):
            found = self._nearest.get(key)
            if found is None:
                todo.append(key)
            else:
                out[key] = found
        if not self.sentences:
            return {**out, **{key: self._scored(key, key.split(), None, 0.0) for key in todo}}
        for start in range(0, len(todo), _BATCH):
            batch = todo[start : start + _BATCH]
            scores = process.cdist(
                batch, self.sentences, scorer=fuzz.ratio, dtype=np.float64, workers=workers
            )
            best = scores.argmax(axis=1)  # the first of the best, as extractOne answers
            for row, (key, j) in enumerate(zip(batch, best.tolist(), strict=True)):
                out[key] = self._scored(key, key.split(), self.sentences[j], float(scores[row, j]))
        return out

    def _scored(
        self, key: str, words: list[str], sentence: str | None, score: float
    ) -> tuple[float, float, float]:
        """The :meth:`nearest` answer for ``words`` (``key`` joined) whose closest sentence scores
        ``score``; kept for next time (up to a million requests)."""
        if sentence is None:
            found = (0.0, float(len(words)), 1.0)
        else:
            edits = Levenshtein.distance(words, sentence.split())
            found = (score / 100.0, float(edits), edits / max(1, len(words)))
        if len(self._nearest) < 1_000_000:
            self._nearest[key] = found
        return found

    def forget(self) -> None:
        """Drop the remembered :meth:`nearest` answers (for timing and comparing cold runs)."""
        self._nearest.clear()


@lru_cache(maxsize=2)
def domain_language(n_sentences: int = DOMAIN_SENTENCES) -> DomainLanguage:
    """The process-wide :class:`DomainLanguage` (built once: a few seconds)."""
    return DomainLanguage(n_sentences)


def _column(table: pa.Table, name: str) -> list[Any]:
    values: list[Any] = table.column(name).to_pylist()
    return values


def language_features(
    table: pa.Table,
    homes: dict[str, HomeNames],
    lang: DomainLanguage,
    workers: int = 1,
    batched: bool = True,
) -> dict[str, np.ndarray]:
    """:data:`NAME_FEATURES`, :data:`LANGUAGE_FEATURES` and :data:`RECURRENCE_FEATURES` for the
    rows of the feature query's output (needs its ``household_id``, ``user_id``, ``text``,
    ``next_text``, ``status``, ``er_unresolved_list`` and ``asr_alt_texts`` columns). The closest
    domain sentences of every request and alternative are found together
    (:meth:`DomainLanguage.nearest_many`, ``workers`` threads); ``batched=False`` finds them one
    by one (:meth:`DomainLanguage.nearest`), the reference the batched way must equal."""
    texts = _column(table, "text")
    nexts = _column(table, "next_text")
    households = _column(table, "household_id")
    users = _column(table, "user_id")
    statuses = _column(table, "status")
    unresolved_lists = _column(table, "er_unresolved_list")
    alt_lists = _column(table, "asr_alt_texts")
    n = len(texts)
    names_out = np.full((n, len(NAME_FEATURES)), np.nan)
    lang_out = np.full((n, len(LANGUAGE_FEATURES)), np.nan)
    known_all = lang.words
    lexicons: dict[str, tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]] = {}
    delexed: list[tuple[list[str], list[list[str]]]] = []
    """Per row: the request delexicalised, and each non-empty n-best alternative's."""
    for i in range(n):
        home_id = str(households[i])
        lexicon = lexicons.get(home_id)
        if lexicon is None:
            home = homes.get(home_id)
            lexicon = (
                _by_length((*(home.entities if home else ()), *_GENERIC_NAMES)),
                _by_length((*(home.areas if home else ()), *_GENERIC_AREAS)),
                home.words if home else frozenset(),
            )
            lexicons[home_id] = lexicon
        alts = [str(a) for a in (alt_lists[i] or [])[1:] if a]
        delexed.append(
            (
                delexicalise(str(texts[i] or ""), lexicon[0], lexicon[1]),
                [delexicalise(alt, lexicon[0], lexicon[1]) for alt in alts],
            )
        )
    nearest = lang.nearest
    if batched:
        found = lang.nearest_many((" ".join(w) for d, alts in delexed for w in (d, *alts) if w), workers)

        def nearest(words: Sequence[str]) -> tuple[float, float, float]:
            return found[" ".join(words)]

    patterns: list[str] = []
    for i in range(n):
        home_id = str(households[i])
        home = homes.get(home_id)
        entity_names = home.entities if home else ()
        area_names = home.areas if home else ()
        home_words = lexicons[home_id][2]
        text = str(texts[i] or "")
        words = _words(text)
        delex, alt_delexed = delexed[i]
        patterns.append(" ".join(delex))
        row = names_out[i]
        if words:
            known = [w in known_all or w in home_words for w in words]
            row[8] = 1.0 - sum(known) / len(words)
            row[9] = float(len(words) - sum(known))
            row[10] = sum(w in home_words for w in words) / len(words)
            row[11] = sum(w in lang.template_words for w in words) / len(words)
        unresolved = [normalize_name(str(u)) for u in (unresolved_lists[i] or []) if u]
        if unresolved and home is not None:
            name = max(unresolved, key=len)
            name_words = name.split()
            ent = max((fuzz.ratio(name, e) for e in entity_names), default=0.0) / 100.0
            area = max((fuzz.ratio(name, a) for a in area_names), default=0.0) / 100.0
            padded = f" {name} "
            row[0:8] = (
                ent,
                area,
                max(ent, area),
                sum(w in lang.template_words and w not in home_words for w in name_words) / len(name_words),
                sum(w in home_words for w in name_words) / len(name_words),
                sum(w not in known_all and w not in home_words for w in name_words) / len(name_words),
                float(any(f" {a} " in padded for a in area_names)),
                float(any(f" {e} " in padded for e in entity_names)),
            )
            if nexts[i] is not None:
                next_padded = " " + " ".join(_words(str(nexts[i]))) + " "
                row[12] = float(padded in next_padded)
                row[13] = len(set(name_words) & set(next_padded.split())) / len(set(name_words))
        if delex:
            lang_out[i, 0:5] = lang.ngram_scores(delex)
            lang_out[i, 5:8] = nearest(delex)
        if alt_delexed:
            best_ratio = best_bigram = 0.0
            for alt_delex in alt_delexed:
                if alt_delex:
                    best_ratio = max(best_ratio, nearest(alt_delex)[0])
                    best_bigram = max(best_bigram, lang.ngram_scores(alt_delex)[1])
            lang_out[i, 8:10] = (best_ratio, best_bigram)
    out = {name: names_out[:, j] for j, name in enumerate(NAME_FEATURES)}
    out.update({name: lang_out[:, j] for j, name in enumerate(LANGUAGE_FEATURES)})
    out.update(_recurrence([str(t or "") for t in texts], patterns, users, households, statuses))
    return out


def _recurrence(
    texts: list[str],
    patterns: list[str],
    users: list[object],
    households: list[object],
    statuses: list[object],
) -> dict[str, np.ndarray]:
    pattern_users: dict[str, set[object]] = defaultdict(set)
    pattern_homes: dict[str, set[object]] = defaultdict(set)
    pattern_n: Counter[str] = Counter()
    pattern_ok: Counter[str] = Counter()
    text_users: dict[str, set[object]] = defaultdict(set)
    text_n: Counter[str] = Counter()
    text_ok: Counter[str] = Counter()
    ok = [s == "success" for s in statuses]
    for text, pattern, user, home, good in zip(texts, patterns, users, households, ok, strict=True):
        pattern_users[pattern].add(user)
        pattern_homes[pattern].add(home)
        pattern_n[pattern] += 1
        pattern_ok[pattern] += good
        text_users[text].add(user)
        text_n[text] += 1
        text_ok[text] += good
    n = len(texts)
    out = np.full((n, len(RECURRENCE_FEATURES)), np.nan)
    for i, (text, pattern, good) in enumerate(zip(texts, patterns, ok, strict=True)):
        out[i, 0] = len(pattern_users[pattern])
        out[i, 1] = len(pattern_homes[pattern])
        if pattern_n[pattern] > 1:
            out[i, 2] = (pattern_ok[pattern] - good) / (pattern_n[pattern] - 1)
        out[i, 3] = len(text_users[text])
        if text_n[text] > 1:
            out[i, 4] = (text_ok[text] - good) / (text_n[text] - 1)
    return {name: out[:, j] for j, name in enumerate(RECURRENCE_FEATURES)}
