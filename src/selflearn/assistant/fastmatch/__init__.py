"""hassil's matcher, compiled: the same results as ``hassil.recognize_all``, in less time.

``hassil.string_matcher.match_expression`` walks a sentence template as a tree of
expressions, re-dispatching on the expression type, re-stripping and re-escaping chunk texts
and building a dataclass per step. Here each expression is compiled once into a closure that
does exactly the same steps in exactly the same order -- the same contexts, yielded in the same
order, sharing and mutating the same entity objects at the same moments (hassil closes open
wildcards and unmatched entities in place, and those objects are shared between contexts, so
the order of evaluation is part of the behaviour) -- with what depends only on the template
computed ahead:

* chunk texts are stripped, escaped and compiled to regular expressions once;
* contexts are plain ``__slots__`` objects with the attributes hassil's ``MatchContext`` has
  (hassil's own ``_process_match_contexts`` turns them into results);
* a number-word range without an open wildcard only looks for number words at the start of
  the text (hassil scans every position and then discards all but the start).

This is a port of hassil |version| (``hassil.string_matcher.match_expression`` and
``hassil.recognize.recognize_all``/``recognize_best``); :data:`SUPPORTED` is false for any
other installed version, and callers then use hassil itself. ``bench/experiments/nlu_equivalence.py`` and
``tests/test_nlu_prefilter.py`` compare every result (intent, entities with values, texts and
spans, unmatched entities, literal text matched, in order) with hassil's.
"""

from __future__ import annotations

from selflearn.assistant.fastmatch.compile import compile_expression as compile_expression
from selflearn.assistant.fastmatch.context import HASSIL_VERSION as HASSIL_VERSION
from selflearn.assistant.fastmatch.context import SUPPORTED as SUPPORTED
from selflearn.assistant.fastmatch.context import Matcher as Matcher
from selflearn.assistant.fastmatch.match import Session as Session
from selflearn.assistant.fastmatch.match import recognize_all as recognize_all
from selflearn.assistant.fastmatch.match import recognize_best as recognize_best
from selflearn.assistant.fastmatch.match import tracked_forms as tracked_forms

# The package is split by purpose: ``context`` (the hassil release ported, hassil's match
# context), ``chunks`` and ``ranges`` (matchers of text chunks and of number ranges),
# ``compile`` (expressions -> matchers) and ``match`` (recognition over the compiled templates).

__doc__ = (__doc__ or "").replace("|version|", HASSIL_VERSION)
