"""Domain language model for the real ASR channel.

The real channel (:class:`selflearn.assistant.asr.RealASR`) decodes with PocketSphinx, whose
general-English language model knows 130k words and is tuned for dictation. A voice assistant
hears a much narrower language: the Home Assistant sentence templates plus the colloquial
phrasings the simulator uses. This module builds an n-gram model of that language:

* :func:`domain_sentences` samples spoken-form sentences from the Home Assistant templates
  (``home_assistant_intents`` parsed by ``hassil``), filling entity, area and floor slots from a
  generic vocabulary of rooms and devices, numbers in words, and wildcards from small lists;
* :func:`build_arpa` turns sentences into an ARPA-format back-off n-gram model (interpolated
  Kneser-Ney, i.e. absolute discounting with continuation counts), in pure Python, restricted to
  the words the recognizer can pronounce;
* :func:`normalize_spoken` is the text normalization both use (lower case, numbers as words,
  no punctuation except apostrophes), which is also what WER is computed on.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from selflearn.core.errors import DependencyError
from selflearn.core.text import normalize_spoken

__all__ = [
    "DEFAULT_AREAS",
    "DEFAULT_FLOORS",
    "DEFAULT_NAMES",
    "WILDCARD_FILLERS",
    "build_arpa",
    "dictionary_path",
    "dictionary_words",
    "domain_sentences",
    "pronunciations",
    "speakable_words",
]

DEFAULT_AREAS: tuple[str, ...] = (
    "kitchen",
    "living room",
    "bedroom",
    "master bedroom",
    "bathroom",
    "office",
    "garage",
    "hallway",
    "basement",
    "dining room",
    "guest room",
    "nursery",
    "porch",
    "laundry room",
    "attic",
    "backyard",
)
"""Generic room names used to fill ``{area}`` when sampling templates."""

DEFAULT_FLOORS: tuple[str, ...] = (
    "upstairs",
    "downstairs",
    "ground floor",
    "first floor",
    "second floor",
    "main floor",
    "basement",
    "attic",
)
"""Generic floor names used to fill ``{floor}``."""

DEFAULT_NAMES: tuple[str, ...] = (
    "ceiling light",
    "lamp",
    "desk lamp",
    "floor lamp",
    "tv",
    "television",
    "fan",
    "ceiling fan",
    "heater",
    "front door",
    "back door",
    "garage door",
    "blinds",
    "curtains",
    "vacuum",
    "speaker",
    "thermostat",
    "air conditioner",
    "coffee maker",
    "kitchen light",
    "porch light",
    "night light",
    "shopping list",
    "grocery list",
)
"""Generic device (entity) names used to fill ``{name}``."""

WILDCARD_FILLERS: dict[str, tuple[str, ...]] = {
    "shopping_list_item": (
        "milk",
        "eggs",
        "bread",
        "apples",
        "bananas",
        "coffee",
        "butter",
        "cheese",
        "paper towels",
        "dish soap",
        "orange juice",
        "chicken",
    ),
    "todo_list_item": (
        "call mom",
        "take out the trash",
        "pay the bills",
        "water the plants",
        "walk the dog",
        "clean the garage",
        "buy a present",
    ),
    "timer_name": ("pizza", "pasta", "laundry", "tea", "eggs", "oven", "cookies", "nap", "workout"),
    "timer_command": ("turn off the lights", "turn on the fan", "lock the front door"),
    "message": ("dinner is ready", "time to leave", "i am on my way", "please come downstairs"),
    "search_query": (
        "jazz",
        "classical music",
        "the beatles",
        "some relaxing music",
        "the news",
        "rock music",
        "my playlist",
    ),
    "zone": ("home", "work", "school", "the office", "the gym"),
}
"""Values for Home Assistant's wildcard lists (free text in the templates)."""


def dictionary_path() -> Path:
    """Path of PocketSphinx's bundled US-English pronunciation dictionary.

    Raises:
        DependencyError: when the ``pocketsphinx`` package is not installed.
    """
    try:
        import pocketsphinx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError("the pocketsphinx package is missing: pip install 'selflearn[asr]'") from exc
    return Path(pocketsphinx.get_model_path("en-us")) / "cmudict-en-us.dict"


@lru_cache(maxsize=4)
def _load_dictionary(path: Path) -> dict[str, tuple[str, ...]]:
    prons: dict[str, list[str]] = defaultdict(list)
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            head, _, phones = line.strip().partition(" ")
            if head and phones:
                prons[head.split("(", 1)[0]].append(phones.split("#", 1)[0].strip())
    return {word: tuple(values) for word, values in prons.items()}


def dictionary_words(path: Path | None = None) -> frozenset[str]:
    """Words (without alternate-pronunciation markers) of a Sphinx pronunciation dictionary.

    ``path`` defaults to :func:`dictionary_path`.
    """
    return frozenset(_load_dictionary(path or dictionary_path()))


_SIBILANTS = {"S", "Z", "SH", "ZH", "CH", "JH"}
_VOICELESS = {"P", "T", "K", "F", "TH"}


def _plural(phones: str) -> str:
    last = phones.split()[-1]
    if last in _SIBILANTS:
        return phones + " IH Z"
    if last in _VOICELESS:
        return phones + " S"
    return phones + " Z"


def pronunciations(word: str, path: Path | None = None) -> tuple[str, ...]:
    """Pronunciations of ``word`` (ARPAbet phone strings), empty when none can be found.

    Dictionary entries come first; for a missing word a pronunciation is derived when it is
    a spelling without apostrophe of a dictionary word (``hows -> how's``), a plural of one
    (``awnings``), or a compound of two (``unpause = un + pause``).
    """
    table = _load_dictionary(path or dictionary_path())
    found = table.get(word)
    if found:
        return found
    if word.endswith("s") and len(word) > 2:
        with_apostrophe = word[:-1] + "'s"
        if with_apostrophe in table:
            return table[with_apostrophe]
        if word[:-1] in table:
            return tuple(_plural(p) for p in table[word[:-1]])
        if word.endswith("es") and word[:-2] in table:
            return tuple(_plural(p) for p in table[word[:-2]])
    best: tuple[str, ...] = ()
    best_balance = 1
    for cut in range(2, len(word) - 1):
        head, tail = word[:cut], word[cut:]
        if head in table and tail in table and min(len(head), len(tail)) > best_balance:
            best_balance = min(len(head), len(tail))
            best = (table[head][0] + " " + table[tail][0],)
    return best


def speakable_words(words: Iterable[str], path: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Pronunciations of every word of ``words`` that has one (see :func:`pronunciations`)."""
    out: dict[str, tuple[str, ...]] = {}
    for word in words:
        if word not in out:
            found = pronunciations(word, path)
            if found:
                out[word] = found
    return out


# --------------------------------------------------------------------------------------------
# Sampling the Home Assistant sentence space


def _expand(expr: Any, ctx: _SampleContext) -> str:
    """One random expansion of a hassil expression."""
    from hassil.expression import (
        Alternative,
        ListReference,
        Permutation,
        RuleReference,
        TextChunk,
    )
    from hassil.expression import (
        Sequence as HSequence,
    )

    if isinstance(expr, TextChunk):
        return str(expr.original_text if expr.original_text is not None else expr.text)
    if isinstance(expr, Alternative):
        return _expand(ctx.rng.choice(expr.items), ctx)
    if isinstance(expr, Permutation):
        items = list(expr.items)
        ctx.rng.shuffle(items)
        return " ".join(_expand(item, ctx) for item in items)
    if isinstance(expr, HSequence):
        return "".join(_expand(item, ctx) for item in expr.items)
    if isinstance(expr, RuleReference):
        rule = ctx.rules.get(expr.rule_name)
        if rule is None:
            raise _SkipTemplate(expr.rule_name)
        return _expand(rule.expression, ctx)
    if isinstance(expr, ListReference):
        return _expand_list(expr, ctx)
    raise _SkipTemplate(type(expr).__name__)


def _expand_list(ref: Any, ctx: _SampleContext) -> str:
    from hassil.intents import RangeSlotList, TextSlotList, WildcardSlotList

    if ref.is_inline_range:
        start, stop, step = ref.get_inline_range()
        return str(ctx.rng.randrange(start, stop + 1, step))
    fillers = ctx.wildcards.get(ref.list_name)
    slot_list = ctx.lists.get(ref.list_name)
    if isinstance(slot_list, WildcardSlotList) or (slot_list is None and fillers):
        if not fillers:
            raise _SkipTemplate(ref.list_name)
        return ctx.rng.choice(fillers)
    if isinstance(slot_list, TextSlotList):
        if not slot_list.values:
            raise _SkipTemplate(ref.list_name)
        return _expand(ctx.rng.choice(slot_list.values).text_in, ctx)
    if isinstance(slot_list, RangeSlotList):
        numbers = ctx.numbers.get(ref.list_name)
        if numbers is None:
            numbers = list(itertools.islice(slot_list.get_numbers(), 10_000))
            ctx.numbers[ref.list_name] = numbers
        if not numbers:
            raise _SkipTemplate(ref.list_name)
        value = ctx.rng.choice(numbers)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        # People mostly say round numbers; keep most values multiples of five.
        if isinstance(value, int) and value > 20 and ctx.rng.random() < 0.6:
            value -= value % 5
        return str(value)
    raise _SkipTemplate(ref.list_name)


class _SkipTemplate(Exception):
    """A template refers to something this sampler cannot fill."""


class _SampleContext:
    def __init__(self, rng: random.Random, lists: dict[str, Any], rules: dict[str, Any]) -> None:
        self.rng = rng
        self.lists = lists
        self.rules = rules
        self.wildcards = WILDCARD_FILLERS
        self.numbers: dict[str, list[Any]] = {}


def _template_sentences(
    areas: Sequence[str], names: Sequence[str], floors: Sequence[str]
) -> tuple[list[tuple[Any, dict[str, Any], dict[str, Any]]], Any]:
    """All (template, slot lists, expansion rules) of the English Home Assistant intents."""
    from hassil import Intents
    from hassil.intents import TextSlotList
    from home_assistant_intents import get_intents

    data = get_intents("en")
    if data is None:  # pragma: no cover - the package always ships English
        raise DependencyError("home_assistant_intents has no English intents")
    intents = Intents.from_dict(data)
    generic = {
        "area": TextSlotList.from_strings(list(areas)),
        "name": TextSlotList.from_strings(list(names)),
        "floor": TextSlotList.from_strings(list(floors)),
    }
    lists = {**intents.slot_lists, **generic}
    templates: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
    for intent in intents.intents.values():
        for data_block in intent.data:
            rules = {**intents.expansion_rules, **data_block.expansion_rules}
            block_lists = {**lists, **data_block.slot_lists} if data_block.slot_lists else lists
            for sentence in data_block.sentences:
                templates.append((sentence, block_lists, rules))
    return templates, intents


def domain_sentences(
    n: int = 20000,
    seed: int = 0,
    extra: Iterable[str] = (),
    *,
    areas: Sequence[str] = DEFAULT_AREAS,
    names: Sequence[str] = DEFAULT_NAMES,
    floors: Sequence[str] = DEFAULT_FLOORS,
    per_intent_enumerated: int = 40,
) -> list[str]:
    """Spoken-form sentences of the assistant's domain.

    Two sources from ``home_assistant_intents.get_intents("en")`` parsed by hassil:

    * hassil's own enumerator, ``hassil.sample.sample_intents``, capped at
      ``per_intent_enumerated`` sentences per intent (it enumerates in product order, so the
      cap keeps it to a fraction of a second but only reaches each intent's first phrasings);
    * ``n`` random expansions, spread evenly over all templates: each alternative, optional,
      permutation and slot value is chosen at random, so coverage does not depend on order.
      Per template the expansion is one path, never the full product, so this is linear in
      ``n`` (about 1-2 s for 20,000).

    Then every sentence of ``extra`` (e.g. the simulator's colloquial phrasings, with their
    placeholders already filled). All sentences go through :func:`normalize_spoken`; the result
    is deterministic for a given ``seed``.
    """
    from hassil.intents import RangeSlotList, TextSlotList
    from hassil.sample import sample_intents

    rng = random.Random(seed)
    templates, intents = _template_sentences(areas, names, floors)
    out: list[str] = []

    if per_intent_enumerated > 0:
        enum_lists: dict[str, Any] = {
            "area": TextSlotList.from_strings(list(areas[:2])),
            "name": TextSlotList.from_strings(list(names[:2])),
            "floor": TextSlotList.from_strings(list(floors[:1])),
        }
        for list_name, fillers in WILDCARD_FILLERS.items():
            enum_lists[list_name] = TextSlotList.from_strings(list(fillers[:2]))
        for list_name, slot_list in intents.slot_lists.items():
            if isinstance(slot_list, RangeSlotList):
                enum_lists[list_name] = TextSlotList.from_strings(
                    [str(slot_list.start), str(min(slot_list.stop, max(slot_list.start, 50)))]
                )
        for _intent, text in sample_intents(
            intents,
            enum_lists,
            max_sentences_per_intent=per_intent_enumerated,
            exclude_sentences_with_wildcards=False,
            expand_ranges=False,
        ):
            spoken = normalize_spoken(text)
            if spoken:
                out.append(spoken)

    order = list(range(len(templates)))
    rng.shuffle(order)
    produced = 0
    failures: dict[int, int] = defaultdict(int)
    index = 0
    while produced < n and order:
        slot = order[index % len(order)]
        index += 1
        sentence, lists, rules = templates[slot]
        try:
            text = _expand(sentence.expression, _SampleContext(rng, lists, rules))
        except _SkipTemplate:
            failures[slot] += 1
            if failures[slot] >= 3:
                order.remove(slot)
            continue
        spoken = normalize_spoken(text)
        if spoken:
            out.append(spoken)
            produced += 1
    for text in extra:
        spoken = normalize_spoken(text)
        if spoken:
            out.append(spoken)
    return out


# --------------------------------------------------------------------------------------------
# ARPA n-gram model


BOS = "<s>"
EOS = "</s>"


def _spans(sentence: str, vocabulary: Collection[str] | None) -> Iterator[list[str]]:
    """In-vocabulary stretches of a sentence, with sentence markers where the stretch touches
    the sentence boundary. N-grams never cross an out-of-vocabulary word."""
    words = normalize_spoken(sentence).split()
    if not words:
        return
    current: list[str] = [BOS]
    for word in words:
        if vocabulary is None or word in vocabulary:
            current.append(word)
        else:
            if any(w != BOS for w in current):
                yield current
            current = []
    current.append(EOS)
    if any(w not in (BOS, EOS) for w in current):
        yield current


def _discount(counts: Iterable[int]) -> float:
    """Absolute discount from count-of-counts: D = n1 / (n1 + 2 n2), kept in [0.1, 0.9]."""
    n1 = n2 = 0
    for count in counts:
        if count == 1:
            n1 += 1
        elif count == 2:
            n2 += 1
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(0.9, max(0.1, n1 / (n1 + 2 * n2)))


def _fmt(logp: float) -> str:
    return f"{logp:.6f}"


def build_arpa(
    sentences: Iterable[str],
    order: int = 3,
    vocabulary: Collection[str] | None = None,
    *,
    restrict_to_dictionary: bool = True,
) -> str:
    """An ARPA-format back-off n-gram model of ``sentences``.

    Smoothing is interpolated Kneser-Ney: absolute discounting (one discount per order, from
    count-of-counts) with continuation counts for the lower orders, interpolated down to a
    uniform distribution over the vocabulary, and written in back-off form (for interpolated
    absolute discounting the back-off weight of a history equals its interpolation weight).

    Words outside ``vocabulary`` are dropped and no n-gram spans them. ``vocabulary`` defaults
    to the words PocketSphinx can pronounce (its dictionary plus the derived pronunciations of
    :func:`pronunciations`) when ``restrict_to_dictionary`` is true and the package is
    installed, else every word is kept. Sentences are normalized with :func:`normalize_spoken`.

    Raises:
        ValueError: if ``order`` < 1 or no sentence has an in-vocabulary word.
    """
    if order < 1:
        raise ValueError("order must be at least 1")
    sentences = [normalize_spoken(s) for s in sentences]
    if vocabulary is None and restrict_to_dictionary:
        try:
            vocabulary = frozenset(speakable_words(w for s in sentences for w in s.split()))
        except DependencyError:
            vocabulary = None

    raw: list[dict[tuple[str, ...], int]] = [defaultdict(int) for _ in range(order + 1)]
    for sentence in sentences:
        for span in _spans(sentence, vocabulary):
            for i in range(len(span)):
                for k in range(1, order + 1):
                    if i + k > len(span):
                        break
                    raw[k][tuple(span[i : i + k])] += 1
    if not raw[1]:
        raise ValueError("no in-vocabulary words in the sentences")

    # Kneser-Ney adjusted counts: raw counts at the top order, continuation counts below
    # (number of distinct left extensions), raw counts for n-grams never left-extended.
    adjusted: list[dict[tuple[str, ...], int]] = [{} for _ in range(order + 1)]
    adjusted[order] = dict(raw[order])
    for k in range(order - 1, 0, -1):
        left: dict[tuple[str, ...], int] = defaultdict(int)
        for gram in raw[k + 1]:
            left[gram[1:]] += 1
        adjusted[k] = {gram: left.get(gram, 0) or count for gram, count in raw[k].items()}

    discounts = [0.0] + [_discount(adjusted[k].values()) for k in range(1, order + 1)]

    # Per-history totals and numbers of distinct followers.
    totals: list[dict[tuple[str, ...], int]] = [defaultdict(int) for _ in range(order + 1)]
    followers: list[dict[tuple[str, ...], int]] = [defaultdict(int) for _ in range(order + 1)]
    for k in range(1, order + 1):
        for gram, count in adjusted[k].items():
            if gram[-1] == BOS:
                continue
            totals[k][gram[:-1]] += count
            followers[k][gram[:-1]] += 1

    words = sorted({g[0] for g in raw[1]} - {BOS})
    uniform = 1.0 / len(words)
    probs: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    gammas: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]

    for k in range(1, order + 1):
        d = discounts[k]
        for hist, total in totals[k].items():
            gammas[k][hist] = d * followers[k][hist] / total
        for gram, count in adjusted[k].items():
            if gram[-1] == BOS:
                continue
            hist = gram[:-1]
            lower = uniform if k == 1 else probs[k - 1][gram[1:]]
            probs[k][gram] = max(count - d, 0.0) / totals[k][hist] + gammas[k][hist] * lower

    lines: list[str] = ["\\data\\"]
    sections: list[list[str]] = []
    for k in range(1, order + 1):
        entries: list[str] = []
        grams = sorted(raw[k])
        for gram in grams:
            if gram[-1] == BOS and k > 1:
                continue
            logp = -99.0 if gram == (BOS,) else math.log10(probs[k][gram])
            line = f"{_fmt(logp)}\t{' '.join(gram)}"
            if k < order and gram[-1] != EOS:
                gamma = gammas[k + 1].get(gram)
                if gamma is not None:
                    line += f"\t{_fmt(math.log10(gamma) if gamma > 0 else -99.0)}"
            entries.append(line)
        sections.append(entries)
        lines.append(f"ngram {k}={len(entries)}")
    lines.append("")
    for k, entries in enumerate(sections, start=1):
        lines.append(f"\\{k}-grams:")
        lines.extend(entries)
        lines.append("")
    lines.append("\\end\\")
    lines.append("")
    return "\n".join(lines)
