"""Offline rewrite mining (absorbing Markov chains over reformulation sessions) and the rewrite
table it produces. See ``docs/mining.md``.

Names are imported on first access (PEP 562): Spark's Python workers import
:mod:`selflearn.mining.delex` and should not pay for scipy and the engines."""

import importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

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


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'selflearn.mining' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
