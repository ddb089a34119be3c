"""The labels as files a person reviews and installs (``selflearn label export``, docs/label-export.md):

* **Home Assistant custom sentences** (``custom_sentences/en/selflearn.yaml``): each request that
  Home Assistant failed on and that was labelled from its successful paraphrase, a rewrite that
  worked or a confirmed proposal (a ``transfer:*`` label) with enough confidence becomes a
  sentence template of the label's intent, as the user said it. The configured names it said (an
  area, a device, a floor) become Home Assistant's built-in lists ``{area}``, ``{name}``,
  ``{floor}``, and a number said for a slot Home Assistant has a range list for
  (``brightness``, ``temperature``, ...) becomes that list; slots the text implies without saying
  them (``domain: light`` for "lights") are fixed ``slots:`` of the data item, an area taken from
  the device that heard the request becomes ``requires_context``. A template goes to the
  **global** file only when at least ``min_users`` distinct users said it and it holds no
  household's own name (a name kept as words, a name the assistant could not resolve, or any
  configured name of the speaker's home left in its words -- checked with the
  :class:`~selflearn.core.delex.Delexicalizer` of each speaker's home). The others are that
  household's own: written to ``custom_sentences/en/selflearn_<household>.yaml`` when exporting
  that household. Templates Home Assistant already understands are left out; every written
  template is read back with hassil (it must give its turns' labelled intent and slots), and one
  that would read another labelled request as another intent than its label is left out.
* **Aliases** (``aliases.yaml``, with ``household``): the words its users said for a device or
  an area that are none of its names (:mod:`selflearn.labels.aliases`).
* **A labelled dataset** (``labels.jsonl``): one labelled turn per line (:func:`dataset_rows`).
* **Rasa NLU training data** (``nlu.yml``, Rasa 3.x): the labelled texts per intent with their
  slot spans as entity annotations (:func:`rasa_nlu`).

Everything left out is reported with a reason (:class:`LeftOut`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selflearn.core.errors import ConfigError, DataError
from selflearn.core.store import Store
from selflearn.labels.aliases import alias_candidates, aliases_file
from selflearn.labels.labelled import LabelledTurn, LabelSlot, load_labelled
from selflearn.labels.sentences import (
    LEFT_OUT,
    LIST_SLOTS,
    MIN_CONFIDENCE,
    READ_BACK,
    LeftOut,
    SentencePattern,
    SentencesExport,
    ha_sentences,
    sentences_file,
)

__all__ = [
    "FORMATS",
    "LEFT_OUT",
    "LIST_SLOTS",
    "READ_BACK",
    "LabelExport",
    "LabelSlot",
    "LabelledTurn",
    "LeftOut",
    "SentencePattern",
    "SentencesExport",
    "dataset_rows",
    "export_labels",
    "ha_sentences",
    "load_labelled",
    "pseudonym",
    "rasa_nlu",
    "sentences_file",
]

FORMATS = ("ha", "jsonl", "rasa")
"""The export formats: Home Assistant custom sentences, the JSONL dataset, Rasa NLU YAML."""


def pseudonym(kind: str, value: str | None) -> str | None:
    """A short stable pseudonym of an id (``h-3f2a9c01d4e5`` for a household): the same id gets
    the same pseudonym in every export, so goals and label transfers stay linked."""
    if value is None:
        return None
    digest = hashlib.blake2b(f"selflearn-labels\x1f{kind}\x1f{value}".encode(), digest_size=6).hexdigest()
    return f"{kind}-{digest}"


def dataset_rows(turns: Iterable[LabelledTurn], keep_ids: bool = False) -> list[dict[str, Any]]:
    """One JSON object per labelled turn (docs/label-export.md, "Dataset"); ids are pseudonyms unless
    ``keep_ids``."""

    def ident(kind: str, value: str | None) -> str | None:
        return value if keep_ids else pseudonym(kind, value)

    rows = []
    for t in turns:
        rows.append(
            {
                "turn_id": ident("t", t.turn_id),
                "household_id": ident("h", t.household_id),
                "user_id": ident("u", t.user_id),
                "timestamp": t.timestamp.isoformat() if t.timestamp is not None else None,
                "text": t.text,
                "intent": t.intent,
                "slots": [
                    {
                        "slot": s.slot,
                        "value": s.value,
                        "start": s.start,
                        "end": s.end,
                        "text": t.text[s.start : s.end] if s.said else None,
                    }
                    for s in t.slots
                ],
                "goal_id": ident("g", t.goal_id),
                "goal_success": t.goal_success,
                "confidence": t.confidence,
                "source": t.source,
                "from_turn_id": ident("t", t.from_turn_id),
            }
        )
    return rows


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines())


_RASA_SYNTAX = re.compile(r"[\[\]{}()]")


def _annotated(turn: LabelledTurn) -> str | None:
    """The text with each said slot as a Rasa entity annotation, or ``None`` if spans overlap."""
    text = turn.text
    out, pos = [], 0
    for s in sorted((s for s in turn.slots if s.said), key=lambda s: s.start or 0):
        start, end = int(s.start or 0), int(s.end or 0)
        if not 0 <= start < end <= len(text) or start < pos:
            return None
        out.append(_RASA_SYNTAX.sub(" ", text[pos:start]))
        words = _RASA_SYNTAX.sub(" ", text[start:end])
        if s.value == words:
            out.append(f"[{words}]({s.slot})")
        else:
            out.append(f"[{words}]" + json.dumps({"entity": s.slot, "value": s.value}))
        pos = end
    out.append(_RASA_SYNTAX.sub(" ", text[pos:]))
    return " ".join("".join(out).split())


def rasa_nlu(turns: Iterable[LabelledTurn], min_confidence: float = MIN_CONFIDENCE) -> str:
    """Rasa 3.x NLU training data (``nlu.yml``) from the labelled turns with an intent and at least
    ``min_confidence``: per intent, each distinct text once, said slots annotated (``[kitchen](area)``;
    ``[lounge]{"entity": "area", "value": "living_room"}`` when the value is not the words).
    Implied slots (no span) cannot be annotated in Rasa's format and are left out."""
    examples: dict[str, list[str]] = {}
    for turn in turns:
        if turn.intent is None or turn.confidence < min_confidence:
            continue
        line = _annotated(turn)
        if line and line not in examples.setdefault(turn.intent, []):
            examples[turn.intent].append(line)
    text = _comment(
        "Rasa NLU training data from selflearn's labels (exported by `selflearn label export`;\n"
        "review before training). Slots Home Assistant fills without their words being said\n"
        "(e.g. domain) have no span and no annotation."
    )
    text += 'version: "3.1"\n'
    if not examples:
        return text + "nlu: []\n"
    text += "nlu:\n"
    for intent in sorted(examples):
        text += f"- intent: {intent}\n  examples: |\n"
        text += "".join(f"    - {line}\n" for line in examples[intent])
    return text


# --- writing it all ---------------------------------------------------------------------------


@dataclass
class LabelExport:
    """What :func:`export_labels` wrote."""

    files: dict[str, Path] = field(default_factory=dict)
    """``ha``, ``ha_household``, ``aliases``, ``jsonl``, ``rasa`` -> the file written."""
    global_sentences: int = 0
    """Templates in the global custom sentences file."""
    household_sentences: int = 0
    """Templates in the household's own file."""
    aliases: int = 0
    """Candidate aliases of the household's devices and areas."""
    dataset_rows: int = 0
    """Lines of the JSONL dataset."""
    rasa_examples: int = 0
    """Examples of the Rasa file."""
    left_out: list[LeftOut] = field(default_factory=list)
    """What the sentence export left out, with reasons."""


def export_labels(
    store: Store,
    out: Path,
    *,
    household: str | None = None,
    min_users: int = 5,
    min_confidence: float = MIN_CONFIDENCE,
    formats: Sequence[str] = FORMATS,
    keep_ids: bool = False,
    wildcards: bool = False,
) -> LabelExport:
    """Write the store's labels into the folder ``out`` in ``formats`` (see the module docstring).

    Templates pool every household's users; ``household``'s own templates are written too when
    it is given, and then the dataset and the Rasa file hold only its turns. ``wildcards``: see
    :func:`~selflearn.labels.sentences.ha_sentences`."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(
            f"unknown export format(s) {unknown or list(formats)}; expected some of {list(FORMATS)}"
        )
    turns = load_labelled(store)
    mine = turns if household is None else [t for t in turns if t.household_id == household]
    if household is not None and not mine:
        known = ", ".join(sorted({t.household_id for t in turns})[:10])
        raise ConfigError(f"the store has no labelled turns of household {household} (households: {known})")
    result = LabelExport()
    texts: dict[str, tuple[Path, str]] = {}
    if "ha" in formats:
        homes = store.homes()
        found = ha_sentences(
            turns,
            homes,
            min_users=min_users,
            min_confidence=min_confidence,
            household=household,
            wildcards=wildcards,
        )
        shown = [x for x in found.left_out if x.household is None or household in (None, x.household)]
        result.left_out = shown
        result.global_sentences = len(found.global_patterns)
        folder = out / "custom_sentences" / "en"
        texts["ha"] = (folder / "selflearn.yaml", sentences_file(found.global_patterns, None))
        if household is not None:
            own = found.household_patterns.get(household, [])
            result.household_sentences = len(own)
            texts["ha_household"] = (folder / f"selflearn_{household}.yaml", sentences_file(own, household))
            if household in homes:
                candidates = alias_candidates(mine, homes[household], min_confidence)
                result.aliases = len(candidates)
                texts["aliases"] = (out / "aliases.yaml", aliases_file(candidates, household))
    if "jsonl" in formats:
        rows = dataset_rows(mine, keep_ids)
        result.dataset_rows = len(rows)
        texts["jsonl"] = (
            out / "labels.jsonl",
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
        )
    if "rasa" in formats:
        nlu = rasa_nlu(mine, min_confidence)
        result.rasa_examples = sum(1 for line in nlu.splitlines() if line.startswith("    - "))
        texts["rasa"] = (out / "nlu.yml", nlu)
    try:
        for key, (path, text) in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            result.files[key] = path
    except OSError as exc:
        raise DataError(f"cannot write the export to {out}: {exc.strerror or exc}") from exc
    return result
