"""Candidates from the home's language: what this home's Assist would understand, near the request.

A candidate source of the online rewriter (beside the global layer's patterns and the household's
own successes). For a request the assistant failed on it proposes sentences from four searches,
each a different way the request can be close to what it meant:

* ``pattern``: home-language patterns (:mod:`selflearn.rewrite.home_language`) nearest the
  request's pattern by the sentence encoder, filled with the request's own values ("kill the
  lights in the {area}" -> "turn off {area} light");
* ``dense``: this home's sentences (:mod:`selflearn.rewrite.home_sentences`) nearest the request
  by the encoder;
* ``sound`` and ``spelling``: this home's sentences nearest the request by the ratio of their
  Metaphone codes, and of their letters -- what a recogniser's damage leaves ("turn on lamps in
  ten" -> "turn on lamps in den");
* ``repaired``: the ``pattern`` search again for the request with its damaged names said as the
  home's (:mod:`selflearn.rewrite.spotting`).

Every candidate passes the rewriter's guards (no polarity flip, no other kind of thing, ...)
against the request, and the home check (:class:`~selflearn.rewrite.resolves.HomeCheck`): it runs
in this home, and its :class:`~selflearn.rewrite.resolves.Reading` (what it would do) is kept;
two candidates that would do the same thing are one, with every source that found it.

Per home, the sentences are built once (:meth:`HomeCandidates.home_index`, on first use or ahead of
it) and kept (``homes`` of them, least recently used dropped); a home whose configuration changed
gets a new fingerprint, so its sentences are rebuilt. A loaded source (a service's) builds them in
a background thread: a home's first failed requests go without them for those seconds rather than
wait. Building reads every sentence through the
home check once (about 0.6 ms each): the two in three that would not run in this home (a wording
its entities' domains do not serve) are dropped before they are embedded, and the readings of the
others are kept, so a request pays the check only for the sentences it fills with its own values
or numbers. A home sentence is read as said from no particular area: it names its targets.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import jellyfish
import numpy as np
from rapidfuzz import fuzz, process

from selflearn.core.artefacts import format_name, read_description, write_description
from selflearn.core.delex import NAME_KINDS, PLACEHOLDER, Delexicalizer, fill
from selflearn.core.guards import ON_OFF_DIMENSIONS, on_off_rejection, rejection
from selflearn.core.home import Home, normalize_name
from selflearn.rewrite.dense import DenseIndex, Encoder, home_entries
from selflearn.rewrite.encoder import SentenceEncoder
from selflearn.rewrite.home_language import HomeLanguage
from selflearn.rewrite.home_sentences import HomeSentence, home_sentences
from selflearn.rewrite.knowledge import embed_text, slots_key
from selflearn.rewrite.resolves import HomeCheck, Reading
from selflearn.rewrite.spotting import repaired

FORMAT = format_name("home-candidates", 1)

log = logging.getLogger(__name__)

SOURCES = ("pattern", "dense", "sound", "spelling", "repaired")
"""Where a home-language candidate can come from."""

PER_SOURCE = 8
"""Candidates kept per source."""
SEARCHED = 120
"""Entries looked at per source before guards and the home check."""
READS = 3
"""Sentences per source and request read through the home's matcher (the ones the home's index
does not already know): what bounds a request's time."""


@dataclass
class HomeCandidate:
    """A sentence this home understands, proposed for a request."""

    text: str
    reading: Reading
    sources: dict[str, int] = field(default_factory=dict)
    """Source -> the candidate's rank in it (0: first)."""
    similarity: dict[str, float] = field(default_factory=dict)
    """Source -> its similarity score (cosine, or a 0-1 ratio)."""
    pattern: str = ""
    """The home-language pattern it was filled from."""


@dataclass
class _HomeIndex:
    sentences: list[HomeSentence]
    """The sentences that run in this home (or still need a request's numbers)."""
    vectors: np.ndarray
    texts: list[str]
    codes: list[str]
    readings: dict[str, Reading]
    """Sentence (without numbers) -> what it does, read once when the index was built."""
    meanings: dict[tuple[str, tuple[tuple[str, str], ...]], Reading]
    """(Interpretation, its names by kind: :func:`_names`) -> what every wording of it does here."""


class HomeCandidates:
    """The home-language candidate source (see the module docstring)."""

    def __init__(
        self,
        language: HomeLanguage,
        encoder: Encoder,
        check: HomeCheck | None = None,
        related: Callable[[str, str], bool] | None = None,
        homes: int = 64,
        per_source: int = PER_SOURCE,
        reads: int = READS,
        wait: bool = True,
    ) -> None:
        self.language = language
        self.encoder = encoder
        self.check = check or HomeCheck()
        self.related = related
        self.per_source = per_source
        self.reads = reads
        self.wait = wait
        """False (a loaded source, serving): a home's sentences are built in the background."""
        self._lock = threading.Lock()
        self._building: dict[str, Future[_HomeIndex]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._background_check = self.check
        self.patterns = DenseIndex(encoder).add(home_entries(language))
        self._homes: OrderedDict[str, _HomeIndex] = OrderedDict()
        self._max_homes = homes

    def save(self, folder: str | Path) -> Path:
        """Write the home language (``language/``) and, when it is one, the sentence encoder
        (``encoder/``, copied) with a description; no home's sentences (they hold its names)."""
        out = Path(folder)
        self.language.save(out / "language")
        encoder = getattr(self.encoder, "path", None)
        trained = isinstance(encoder, Path) and (encoder / "model.onnx").exists()
        if trained:
            assert isinstance(encoder, Path)
            if (out / "encoder").resolve() != encoder.resolve():
                shutil.rmtree(out / "encoder", ignore_errors=True)
                shutil.copytree(encoder, out / "encoder")
        return write_description(out, FORMAT, {"encoder": trained, "per_source": self.per_source})

    @classmethod
    def load(
        cls, folder: str | Path, embedder: Encoder, related: Callable[[str, str], bool] | None = None
    ) -> HomeCandidates:
        """Read a folder written by :meth:`save`; ``embedder`` searches when it holds no encoder."""
        meta = read_description(
            folder, FORMAT, "home-language source", retrain="selflearn train rewriter --home-language"
        )
        language = HomeLanguage.load(Path(folder) / "language")
        encoder: Encoder = SentenceEncoder.load(Path(folder) / "encoder") if meta.get("encoder") else embedder
        per_source = int(meta.get("per_source", PER_SOURCE))
        return cls(language, encoder, related=related, per_source=per_source, wait=False)

    def home_index(self, home: Home) -> _HomeIndex:
        """This home's sentences with their vectors and sound codes (built once per fingerprint,
        here and now)."""
        hit = self._homes.get(home.fingerprint)
        if hit is not None:
            self._homes.move_to_end(home.fingerprint)
            return hit
        return self._keep(home.fingerprint, self._build(home, self.check))

    def ready(self, home: Home) -> _HomeIndex | None:
        """This home's index; with :attr:`wait` off, None until it is built: the first request of
        a home not built yet starts building it in a background thread (with a home check of its
        own), and requests go on without the home's language meanwhile."""
        if self.wait or home.fingerprint in self._homes:
            return self.home_index(home)
        key = home.fingerprint
        with self._lock:
            job = self._building.get(key)
            if job is None:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="selflearn-home-index")
                    self._background_check = HomeCheck(cache=0)
                self._building[key] = self._pool.submit(self._build, home, self._background_check)
                return None
            if not job.done():
                return None
            del self._building[key]
        try:
            return self._keep(key, job.result())
        except Exception as exc:  # the next request tries again
            log.warning("building the home's sentences failed (%s: %s)", type(exc).__name__, exc)
            return None

    def _keep(self, key: str, index: _HomeIndex) -> _HomeIndex:
        self._homes[key] = index
        if len(self._homes) > self._max_homes:
            self._homes.popitem(last=False)
        return index

    def _build(self, home: Home, check: HomeCheck) -> _HomeIndex:
        sentences: list[HomeSentence] = []
        readings: dict[str, Reading] = {}
        meanings: dict[tuple[str, tuple[tuple[str, str], ...]], Reading] = {}
        for sentence in home_sentences(self.language, home):
            if not sentence.numbers:
                reading = check.read(sentence.text, home, None, keep=False)
                if reading is None:
                    continue
                readings[sentence.text] = reading
                kinds = [k for k in PLACEHOLDER.findall(sentence.pattern) if k != "number"]
                said = _names(zip(kinds, sentence.names, strict=True))
                meanings.setdefault((sentence.meaning, said), reading)
            sentences.append(sentence)
        texts = [s.text for s in sentences]
        vectors = self.encoder.encode(texts)
        return _HomeIndex(sentences, vectors, texts, [_code(t) for t in texts], readings, meanings)

    def candidates(
        self, norm: str, pattern: str, values: tuple[tuple[str, str], ...], home: Home, area_id: str | None
    ) -> list[HomeCandidate]:
        """Candidates for a request said as ``norm`` (normalised), delexicalized into ``pattern``
        with ``values``, in ``home`` from ``area_id``."""
        index = self.ready(home)
        if index is None:
            return []
        found: dict[str, HomeCandidate] = {}
        seen_actions: dict[str, str] = {}
        numbers = [v for kind, v in values if kind == "number"]
        reads: dict[str, int] = {}
        dead: set[str] = set()  # refused by a guard or not run here: another search may offer it again

        def offer(
            text: str | None,
            source: str,
            rank: int,
            score: float,
            from_pattern: str = "",
            known: Reading | None = None,
        ) -> bool:
            if text is None or text == norm or text in dead:
                return False
            cand = found.get(text)
            if cand is None:
                why = rejection(norm, text, self.related)
                on_off = why in ON_OFF_GUARDS and _may_mean_on_off(norm, text, self.related)
                if why is not None and not on_off:
                    dead.add(text)
                    return False
                reading = known or index.readings.get(text)
                if reading is None:
                    if reads.get(source, 0) >= self.reads:
                        return False
                    reads[source] = reads.get(source, 0) + 1
                    reading = self.check.read(text, home, area_id)
                if reading is not None and reading.on_off_means is not None:
                    on = reading.intent == "HassTurnOn"
                    why = on_off_rejection(norm, text, reading.on_off_means, on, self.related)
                if reading is None or why is not None:
                    dead.add(text)
                    return False
                same = seen_actions.get(reading.action)
                if same is not None:  # another wording of a candidate we have: one candidate
                    cand = found[same]
                else:
                    cand = found[text] = HomeCandidate(text, reading, pattern=from_pattern)
                    seen_actions[reading.action] = text
            if source in cand.sources:
                return False
            cand.sources[source] = rank
            cand.similarity[source] = score
            return True

        self._by_pattern(pattern, values, offer, "pattern", index)
        if index.sentences:
            sims = index.vectors @ self.encoder.encode_one(norm)
            k = min(SEARCHED, len(sims))
            top = np.argpartition(-sims, k - 1)[:k]
            top = top[np.argsort(-sims[top], kind="stable")]
            self._take(((int(i), float(sims[i])) for i in top), index, numbers, offer, "dense")
            for source, query, choices in (
                ("sound", _code(norm), index.codes),
                ("spelling", norm, index.texts),
            ):
                hits = process.extract(query, choices, scorer=fuzz.ratio, limit=SEARCHED)
                self._take(((int(i), score / 100.0) for _, score, i in hits), index, numbers, offer, source)
        fixed = repaired(norm, home)
        if fixed is not None:
            d = Delexicalizer(home)(fixed)
            offer(fixed, "repaired", 0, 1.0)
            self._by_pattern(d.pattern, d.values, offer, "repaired", index)
        return list(found.values())

    def _by_pattern(
        self,
        pattern: str,
        values: tuple[tuple[str, str], ...],
        offer: Callable[..., bool],
        source: str,
        index: _HomeIndex,
    ) -> None:
        vector = self.encoder.encode_one(embed_text(pattern))
        # The index holds only patterns with the request's placeholders, so a wording filled with
        # its values says exactly its names: what that interpretation does with them is known from
        # the home's sentences, or it does not run here (numbers are read one by one).
        names = _names(values) if index.meanings and "{number}" not in pattern else None
        taken = 0
        for entry, cos in self.patterns.search(vector, slots_key(pattern), SEARCHED):
            if entry.pattern == pattern:
                continue
            known = None
            if names is not None:
                p = self.language.patterns_[entry.row]
                known = index.meanings.get((p.meaning, names))
                # the same interpretation from a template for other domains ("lock the {name}" and
                # "{name} light on" are both a turn-on): this wording does not serve these names
                if known is None or not _serves(p.domains, known):
                    continue
            if offer(fill(entry.pattern, values), source, taken, cos, entry.pattern, known):
                taken += 1
                if taken >= self.per_source:
                    return

    def _take(
        self,
        hits: object,
        index: _HomeIndex,
        numbers: list[str],
        offer: Callable[..., bool],
        source: str,
    ) -> None:
        taken = 0
        for i, score in hits:  # type: ignore[attr-defined]
            sentence = index.sentences[i]
            if offer(sentence.with_numbers(numbers), source, taken, score, sentence.pattern):
                taken += 1
                if taken >= self.per_source:
                    return


ON_OFF_GUARDS = ("another action", "chooses a sensitive action")
"""Guards that a candidate turning a cover, valve or lock on or off may pass after all, read with
what its on/off mean: "bedroom shades off" asks for what "close the bedroom shades" does."""


def _may_mean_on_off(norm: str, text: str, related: Callable[[str, str], bool] | None) -> bool:
    """Whether some reading of on/off (:data:`~selflearn.core.guards.ON_OFF_DIMENSIONS`) lets the
    guards pass ``text`` for ``norm``: words only, before a candidate is read through the matcher."""
    return any(rejection(norm, text, related, means) is None for means in ON_OFF_DIMENSIONS)


def interleaved(cands: list[HomeCandidate]) -> list[HomeCandidate]:
    """The candidates in turns over the sources, each source's best first: without a ranker, the
    order in which to try them (the first of every source, then the second, ...)."""

    def turn(c: HomeCandidate) -> tuple[int, int]:
        best = min(c.sources, key=lambda s: c.sources[s])
        return c.sources[best], SOURCES.index(best)

    return sorted(cands, key=turn)


def _names(values: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The names among a wording's (placeholder, value) pairs, normalised, in a fixed order: an
    interpretation said with them does the same whatever order a wording says them in."""
    return tuple(sorted((kind, normalize_name(value)) for kind, value in values if kind in NAME_KINDS))


def _serves(domains: tuple[str, ...], reading: Reading) -> bool:
    """A wording whose template needs ``domains`` (none: any) can do what ``reading`` does."""
    return not domains or set(reading.domains) <= set(domains)


def _code(text: str) -> str:
    return str(jellyfish.metaphone(text))
