"""selflearn: self-learning defect reduction for voice and chat assistants.

The public API is what ``__all__`` lists; everything else may change between versions.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from selflearn.assistant.devices import HomeState
from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.assistant.turns import HandledTurn
from selflearn.core.errors import ConfigError, DataError, DependencyError, SelflearnError, StoreError
from selflearn.core.home import Area, Entity, Floor, Home
from selflearn.core.hooks import RewriteContext, RewriteHook
from selflearn.core.lazy import lazy_exports as _lazy_exports
from selflearn.core.schema import (
    SCHEMA_VERSION,
    AsrTrace,
    BargeIn,
    DeviceContext,
    ErTrace,
    Feedback,
    NluTrace,
    ResultTrace,
    RewriteTrace,
    Truth,
    Turn,
    WakeTrace,
)
from selflearn.core.store import IngestReport, Store
from selflearn.simulation.phrasing import Phrasing
from selflearn.simulation.simulator import SimulationConfig, SimulationResult, simulate
from selflearn.stats import Stats, compute_stats

if _TYPE_CHECKING:  # the detectors and the rewriter load lightgbm, torch, faiss: imported on first use
    from selflearn.report import ReportData, collect, render_html
    from selflearn.rewrite.fit import FitConfig
    from selflearn.rewrite.rewriter import RewriteDecision, Rewriter, RewriterConfig
    from selflearn.signals.defect import DefectModel, DefectReport, HeuristicDefectDetector, score_defects
    from selflearn.signals.features import turn_features
    from selflearn.signals.rephrase import (
        ContextualRephraseDetector,
        PairwiseRephraseBaseline,
        RephraseDecision,
        RephraseExample,
        score_rephrases,
        session_examples,
    )

_LAZY = {
    "DefectModel": "selflearn.signals.defect",
    "DefectReport": "selflearn.signals.defect",
    "HeuristicDefectDetector": "selflearn.signals.defect",
    "score_defects": "selflearn.signals.defect",
    "turn_features": "selflearn.signals.features",
    "ContextualRephraseDetector": "selflearn.signals.rephrase",
    "PairwiseRephraseBaseline": "selflearn.signals.rephrase",
    "RephraseDecision": "selflearn.signals.rephrase",
    "RephraseExample": "selflearn.signals.rephrase",
    "score_rephrases": "selflearn.signals.rephrase",
    "session_examples": "selflearn.signals.rephrase",
    "FitConfig": "selflearn.rewrite.fit",
    "RewriteDecision": "selflearn.rewrite.rewriter",
    "Rewriter": "selflearn.rewrite.rewriter",
    "RewriterConfig": "selflearn.rewrite.rewriter",
    "ReportData": "selflearn.report",
    "collect": "selflearn.report",
    "render_html": "selflearn.report",
}
"""Public names whose modules are imported on first access (PEP 562), so that ``import
selflearn`` stays fast for the CLI, the simulator and Spark's Python workers."""


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())


__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "Area",
    "AsrTrace",
    "Assistant",
    "AssistantConfig",
    "BargeIn",
    "ConfigError",
    "ContextualRephraseDetector",
    "DataError",
    "DefectModel",
    "DefectReport",
    "DependencyError",
    "DeviceContext",
    "Entity",
    "ErTrace",
    "Feedback",
    "FitConfig",
    "Floor",
    "HandledTurn",
    "HeuristicDefectDetector",
    "Home",
    "HomeAssistantNlu",
    "HomeState",
    "IngestReport",
    "NluTrace",
    "PairwiseRephraseBaseline",
    "Phrasing",
    "RephraseDecision",
    "RephraseExample",
    "ReportData",
    "ResultTrace",
    "RewriteContext",
    "RewriteDecision",
    "RewriteHook",
    "RewriteTrace",
    "Rewriter",
    "RewriterConfig",
    "SelflearnError",
    "SimulationConfig",
    "SimulationResult",
    "Stats",
    "Store",
    "StoreError",
    "Truth",
    "Turn",
    "WakeTrace",
    "__version__",
    "collect",
    "compute_stats",
    "render_html",
    "score_defects",
    "score_rephrases",
    "session_examples",
    "simulate",
    "turn_features",
]
