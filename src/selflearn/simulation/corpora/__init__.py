"""Real corpora as phrasings: Home Assistant's own test sentences, HWU64 and SLURP.

Three public corpora are turned into :class:`~selflearn.simulation.phrasing.Phrasing` objects
mapped to Home Assistant intents and slots, so the simulator can speak like real users:

* ``ha_tests`` -- the English test sentences of ``home-assistant/intents``. Slot values that
  are spoken (area, entity, floor, numbers, items, colours) are located in the sentence and
  replaced by placeholders; slots that are implied (``domain``, ``device_class``, ``state``)
  become fixed slots. Sentences whose slot values cannot be found in the text are dropped.
* ``hwu64`` -- the HWU64 home-assistant command corpus (64 intents, character-span entities).
* ``slurp`` -- SLURP's development split (same intent naming, token-span entities).

HWU64 and SLURP intents map to Home Assistant intents through :data:`INTENT_MAP`. Everything
Home Assistant's built-in intents cannot serve maps to ``OutOfScope`` and is kept verbatim
(no placeholders): out-of-scope requests are realistic traffic that must be refused. Some
mapped intents are decided per utterance (a light-dimming request with a number is
``HassLightSet``, without one it is out of scope); :data:`INTENT_MAP` documents each rule and
:class:`LoadReport` counts what happened. ``docs/corpora.md`` is generated from both
(``python -m selflearn.simulation.corpora --markdown``).

The data is read at run time from ``../shared/data`` (see :func:`find_data_dir`); nothing is
copied into the project. When a corpus is absent the loaders return no phrasings.
"""

from __future__ import annotations

from selflearn.simulation.corpora.common import LoadReport
from selflearn.simulation.corpora.data_dir import DATA_DIR_ENV, DEFAULT_DATA_DIR, find_data_dir
from selflearn.simulation.corpora.loaders import (
    CORPORA,
    CorpusName,
    load_corpus,
    load_ha_tests,
    load_hwu64,
    load_slurp,
    load_with_report,
)
from selflearn.simulation.corpora.mapping import (
    ENTITY_TYPE_MAP,
    INTENT_MAP,
    OUT_OF_SCOPE,
    PLACEHOLDER_ACCEPTS,
    IntentMapping,
)
from selflearn.simulation.corpora.report import _main as _main  # run by tests and ``__main__``
from selflearn.simulation.corpora.report import entity_map_markdown, intent_map_markdown, report_markdown

__all__ = [
    "CORPORA",
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "ENTITY_TYPE_MAP",
    "INTENT_MAP",
    "OUT_OF_SCOPE",
    "PLACEHOLDER_ACCEPTS",
    "CorpusName",
    "IntentMapping",
    "LoadReport",
    "entity_map_markdown",
    "find_data_dir",
    "intent_map_markdown",
    "load_corpus",
    "load_ha_tests",
    "load_hwu64",
    "load_slurp",
    "load_with_report",
    "report_markdown",
]
