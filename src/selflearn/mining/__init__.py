"""Offline rewrite mining (absorbing Markov chains over reformulation sessions) and the rewrite
table it produces. See ``docs/mining.md``.

Names are imported on first access (PEP 562): Spark's Python workers import
:mod:`selflearn.core.delex` and should not pay for scipy and the engines."""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from selflearn.core.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from selflearn.mining.engines import DuckDbEngine, SparkEngine
    from selflearn.mining.miner import MiningConfig, MiningReport, RewriteMiner

_LAZY = {
    "DuckDbEngine": "selflearn.mining.engines",
    "SparkEngine": "selflearn.mining.engines",
    "MiningConfig": "selflearn.mining.miner",
    "MiningReport": "selflearn.mining.miner",
    "RewriteMiner": "selflearn.mining.miner",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "DuckDbEngine",
    "MiningConfig",
    "MiningReport",
    "RewriteMiner",
    "SparkEngine",
]
