"""Text helpers every layer shares: spoken-form normalisation and English number words.

:func:`normalize_spoken` is what a recogniser would write for a text (lower case, numbers as
words, no punctuation but apostrophes inside words); word error rates are computed on it, the
ASR channels produce it, and the miner's delexicalizer recognises the number words it spells.

>>> normalize_spoken("Set the kitchen to 21.5%")
'set the kitchen to twenty one point five percent'
>>> number_to_words(2700)
'two thousand seven hundred'
"""

from __future__ import annotations

import re

__all__ = [
    "FUNCTION_WORDS",
    "ONES",
    "TENS",
    "normalize_spoken",
    "number_to_words",
    "ordinal_to_words",
    "tokenize_spoken",
]

# fmt: off
FUNCTION_WORDS = frozenset((
    "a", "an", "the", "to", "on", "off", "in", "at", "of", "for", "from", "by", "with", "my", "me",
    "our", "your", "it", "its", "is", "are", "be", "and", "or", "up", "down", "please", "what", "whats",
    "how", "this", "that", "these", "those", "all", "some", "any", "set", "turn", "switch", "make",
    "can", "could", "would", "you", "i", "we", "he", "she", "they", "do", "does", "did", "not", "no",
    "yes", "now", "here", "there", "then", "than", "so", "just",
))
# fmt: on
"""Words that say nothing of what a request is about on their own: they never make a household
name (an ASR fragment such as "to" is not a nickname), nor a sentence template without a slot."""

ONES: tuple[str, ...] = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"),
    "nineteen",
)
"""English words for 0..19 (shared by the simulator's and the miner's number handling)."""
TENS: tuple[str, ...] = (
    "_",
    "_",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
)
"""``TENS[n]``: the word for ``10 * n`` (n >= 2)."""
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand"))

_NUMBER = re.compile(r"(?<![\w.])(\d+)(?:\.(\d+))?(?!\w)")
_DIGIT_WORD = re.compile(r"(\d)([a-z])|([a-z])(\d)")
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")
_SPACES = re.compile(r"\s+")


def number_to_words(number: int) -> str:
    """English words for a non-negative integer, e.g. ``2700 -> "two thousand seven hundred"``."""
    if number < 0:
        return "minus " + number_to_words(-number)
    if number < 20:
        return ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return TENS[tens] + ("" if ones == 0 else " " + ONES[ones])
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for scale, word in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return number_to_words(high) + " " + word + ("" if rest == 0 else " " + number_to_words(rest))
    return str(number)  # pragma: no cover - unreachable


_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_ORDINAL = re.compile(r"(?<![\w.])(\d+)(st|nd|rd|th)(?!\w)")


def ordinal_to_words(number: int) -> str:
    """English ordinal words, e.g. ``2 -> "second"``, ``21 -> "twenty first"``."""
    words = number_to_words(number).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _number_match(match: re.Match[str]) -> str:
    words = number_to_words(int(match.group(1)))
    if match.group(2):
        words += " point " + " ".join(ONES[int(d)] for d in match.group(2))
    return f" {words} "


def normalize_spoken(text: str) -> str:
    """Spoken-form normalization: what a recognizer would write for ``text``.

    Lower-cases, spells out numbers (``21.5 -> "twenty one point five"``), turns ``%`` into
    ``percent`` and ``1/2`` into ``a half``, removes every punctuation mark except apostrophes
    inside words, and collapses whitespace. WER is always computed on this form.
    """
    text = text.lower().replace("1/2", " a half ").replace("%", " percent ").replace("&", " and ")
    text = text.replace("\u2019", "'")
    text = _ORDINAL.sub(lambda m: f" {ordinal_to_words(int(m.group(1)))} ", text)
    text = _DIGIT_WORD.sub(lambda m: " ".join(g for g in m.groups() if g), text)
    text = _NUMBER.sub(_number_match, text)
    text = _NOT_WORD.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


def tokenize_spoken(text: str) -> list[str]:
    """Words of :func:`normalize_spoken` ``(text)``."""
    return normalize_spoken(text).split()
