"""Free text scrubbed before it is pooled: what in a request identifies a person rather than what
they asked for.

Every utterance is delexicalized (:mod:`selflearn.core.delex`) before anything pools it across
users -- the mined table, the global layer's patterns, exported sentences -- and the
delexicalizer takes out, per request:

* **e-mail addresses**, typed (``anna.b@example.com``) or spoken (``anna dot b at example dot
  com``), **web addresses** (``https://...``, ``www...``) and **phone numbers** (seven or more
  digits in one run, with spaces, dots, dashes, brackets or a leading ``+``): found here
  (:func:`private_spans`) and replaced by ``{unknown}``, their values kept with the request only;
* **numbers** that are not a configured name: ``{number}`` (a brightness, a temperature, a PIN or
  a house number alike -- the pattern keeps none of them);
* **the home's configured names** (areas, floors, entities and their aliases): ``{area}``,
  ``{floor}``, ``{name}``;
* **names the assistant could not resolve** in the request (a nickname, a person): ``{unknown}``.

Other words stay, and a pattern is pooled only when at least k distinct users of at least two
homes said it (``--min-users``): a name only one household uses -- a child's, a pet's, a
nickname -- never reaches a global artefact (``tests/test_privacy.py`` checks both over
generated homes).

>>> [kind for kind, _ in private_spans("mail anna dot b at example dot com or call 555 123 4567")]
['email', 'phone']
"""

from __future__ import annotations

import re

__all__ = ["private_spans"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s]+", re.IGNORECASE)
_TLD = r"(?:com|org|net|edu|gov|io|de|uk|co|nl|fr|eu|info|me)"
_SPOKEN_EMAIL = re.compile(
    rf"\b[a-z0-9]+(?: (?:dot|underscore|dash) [a-z0-9]+)* at [a-z0-9]+(?: dot [a-z0-9]+)* dot {_TLD}\b",
    re.IGNORECASE,
)
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d ().\-]{5,}\d(?![\w.])")


def private_spans(text: str) -> list[tuple[str, str]]:
    """``(kind, span)`` for each e-mail address, web address and phone number in ``text``, in
    order (``kind``: ``email``, ``url``, ``phone``)."""
    found: list[tuple[int, str, str]] = []
    lowered = text.lower()
    if "@" in text:
        found += [(m.start(), "email", m.group(0)) for m in _EMAIL.finditer(text)]
    if "http" in lowered or "www" in lowered:
        found += [(m.start(), "url", m.group(0)) for m in _URL.finditer(text)]
    if " at " in lowered and " dot " in lowered:
        found += [(m.start(), "email", m.group(0)) for m in _SPOKEN_EMAIL.finditer(text)]
    if sum(ch.isdigit() for ch in text) >= 7:
        for m in _PHONE.finditer(text):
            if sum(ch.isdigit() for ch in m.group(0)) >= 7 and not any(
                s <= m.start() < s + len(span) for s, _, span in found
            ):
                found.append((m.start(), "phone", m.group(0)))
    return [(kind, span) for _, kind, span in sorted(found)]
