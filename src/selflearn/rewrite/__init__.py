"""Online rewriting: a global layer and a personal layer in front of the assistant's NLU.

See ``docs/rewriting.md``. :class:`Rewriter` decides per request (``rewrite_one``), learns
per household from logged turns (``observe``), and is trained from logs by :meth:`Rewriter.fit`
(``selflearn train rewriter``).

Names are imported on first access (PEP 562): faiss, LightGBM and the embedder load only when used.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from selflearn.core.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from selflearn.rewrite.fit import DEFAULT_TARGET_RATIO, FitConfig, FitReport
    from selflearn.rewrite.index import VectorIndex
    from selflearn.rewrite.knowledge import Knowledge, KnowledgeConfig
    from selflearn.rewrite.personal import HouseholdMemory, PersonalLayer
    from selflearn.rewrite.ranker import Ranker
    from selflearn.rewrite.rewriter import RewriteDecision, Rewriter, RewriterConfig
    from selflearn.rewrite.table import RewriteTable

_LAZY = {
    "DEFAULT_TARGET_RATIO": "selflearn.rewrite.fit",
    "FitConfig": "selflearn.rewrite.fit",
    "FitReport": "selflearn.rewrite.fit",
    "VectorIndex": "selflearn.rewrite.index",
    "Knowledge": "selflearn.rewrite.knowledge",
    "KnowledgeConfig": "selflearn.rewrite.knowledge",
    "HouseholdMemory": "selflearn.rewrite.personal",
    "PersonalLayer": "selflearn.rewrite.personal",
    "Ranker": "selflearn.rewrite.ranker",
    "RewriteTable": "selflearn.rewrite.table",
    "RewriteDecision": "selflearn.rewrite.rewriter",
    "Rewriter": "selflearn.rewrite.rewriter",
    "RewriterConfig": "selflearn.rewrite.rewriter",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "DEFAULT_TARGET_RATIO",
    "FitConfig",
    "FitReport",
    "HouseholdMemory",
    "Knowledge",
    "KnowledgeConfig",
    "PersonalLayer",
    "Ranker",
    "RewriteDecision",
    "RewriteTable",
    "Rewriter",
    "RewriterConfig",
    "VectorIndex",
]
