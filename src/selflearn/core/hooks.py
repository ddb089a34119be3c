"""The rewrite-hook contract: what sits between an assistant's recogniser and its NLU.

The reference assistant (:class:`~selflearn.assistant.pipeline.Assistant`) calls a
:class:`RewriteHook` with the recognised text and a :class:`RewriteContext`; the online rewriter,
the mined rewrite table and the HTTP service all speak this one contract, so each can stand in
front of any of the others' callers.

An area is always named as the log names it: :attr:`RewriteContext.area` is the *name* of the
area of the device that heard the request (``DeviceContext.area``, the ``area`` field of
``POST /v1/rewrite``); :meth:`RewriteContext.area_id` resolves it in the home.

>>> from selflearn.core.home import Home
>>> home = Home.from_dict({"areas": [{"id": "kitchen", "name": "Kitchen"}]})
>>> context = RewriteContext(home=home, area="kitchen")
>>> context.area_id()
'kitchen'
>>> RewriteContext(area="Kitchen").area_id() is None  # no home, no id
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from selflearn.core.home import Home
from selflearn.core.schema import DeviceContext, RewriteTrace


@dataclass(frozen=True)
class RewriteContext:
    """What a rewriter may know about a request besides its text."""

    household_id: str = "unknown"
    """Pseudonymous id of the home."""
    user_id: str = "unknown"
    """Pseudonymous id of the speaker."""
    home: Home | None = None
    """The home's configuration as the assistant knows it (areas, entities, aliases), for
    delexicalization; ``None`` when the caller has none."""
    area: str | None = None
    """Name of the area of the device that heard the request, as logged, if it has one."""
    timestamp: datetime | None = None
    """When the request was spoken."""
    device: DeviceContext | None = None
    """The device context as logged."""
    failed: bool | None = None
    """Whether the assistant already failed on the original text: ``True`` when the rewriter is
    consulted because the NLU matched nothing or could not resolve a name (rewriting behind the
    NLU); ``None`` when that is unknown (rewriting before it). ``False`` means it worked: a
    rewriter then leaves the text alone."""
    nbest: tuple[str, ...] = ()
    """The recogniser's other hypotheses, best first (the text is the top one); empty for typed
    requests and recognisers that give one hypothesis."""

    def area_id(self) -> str | None:
        """The id of :attr:`area` in :attr:`home`, or ``None`` (no area, no home, unknown name)."""
        return self.home.area_id_of(self.area) if self.home is not None else None


@dataclass(frozen=True)
class Confirm:
    """A rewrite its hook is not sure enough of to apply unasked.

    An assistant that can ask asks "Did you mean *<trace.rewritten_text>*?" and applies the
    rewrite only after a yes; one that cannot ask leaves the text alone (the safe reading).
    """

    trace: RewriteTrace
    """The rewrite that would be applied on a yes."""
    why: str = ""
    """Why the hook asks instead of acting (``"sensitive intent"``, ``"below the acting bar"``)."""


class RewriteHook(Protocol):
    """Something that may rewrite a request's text before the NLU sees it.

    Returns the provenance of the rewrite it applies (:class:`~selflearn.core.schema.RewriteTrace`,
    with ``rewritten_text`` the text the NLU should get), a :class:`Confirm` when it wants the
    assistant to ask first, or ``None`` to leave the text alone.
    Rewriters run in the simulator's worker processes, so they should be picklable, and their
    answers may depend on call order only through what they learn from earlier turns.

    A rewriter that learns online may also have ``observe(turn, home)`` and
    ``observe_feedback(feedback)``: the simulator calls them with every logged turn (once it is
    complete, barge-in included; a turn that asked a question once the question has ended) and
    every feedback answer, in arrival order, per household.
    """

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None: ...
