"""Offline rewrite mining (absorbing Markov chains over reformulation sessions) and the rewrite
table it produces. See ``docs/mining.md``.

Names are imported on first access (PEP 562): Spark's Python workers import
:mod:`selflearn.mining.delex` and should not pay for scipy and the engines."""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from selflearn._lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from selflearn.mining.delex import Delexicalized, Delexicalizer
    from selflearn.mining.engines import DuckDbEngine, SparkEngine
    from selflearn.mining.miner import MiningConfig, MiningReport, mine
    from selflearn.mining.table import RewriteTable, load_rewriter

_LAZY = {
    "Delexicalized": "selflearn.mining.delex",
    "Delexicalizer": "selflearn.mining.delex",
    "DuckDbEngine": "selflearn.mining.engines",
    "SparkEngine": "selflearn.mining.engines",
    "MiningConfig": "selflearn.mining.miner",
    "MiningReport": "selflearn.mining.miner",
    "mine": "selflearn.mining.miner",
    "RewriteTable": "selflearn.mining.table",
    "load_rewriter": "selflearn.mining.table",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "Delexicalized",
    "Delexicalizer",
    "DuckDbEngine",
    "MiningConfig",
    "MiningReport",
    "RewriteTable",
    "SparkEngine",
    "load_rewriter",
    "mine",
]
