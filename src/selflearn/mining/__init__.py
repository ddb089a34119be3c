"""Offline rewrite mining (absorbing Markov chains over reformulation sessions) and the rewrite
table it produces. See ``docs/mining.md``."""

from selflearn.mining.delex import Delexicalized, Delexicalizer
from selflearn.mining.engines import DuckDbEngine, SparkEngine
from selflearn.mining.miner import MiningConfig, MiningReport, mine
from selflearn.mining.table import RewriteTable, load_rewriter

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
