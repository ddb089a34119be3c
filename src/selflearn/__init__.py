"""selflearn: self-learning defect reduction for voice and chat assistants.

The public API is what ``__all__`` lists; everything else may change between versions.
"""

from selflearn.assistant.home import Area, Entity, Floor, Home, HomeState
from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.assistant.pipeline import Assistant, AssistantConfig, HandledTurn, RewriteContext, Rewriter
from selflearn.errors import ConfigError, DataError, DependencyError, SelflearnError, StoreError
from selflearn.schema import (
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
from selflearn.simulation.phrasing import Phrasing
from selflearn.simulation.simulator import SimulationConfig, SimulationResult, simulate
from selflearn.stats import Stats, compute_stats
from selflearn.store import IngestReport, Store

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
    "ResultTrace",
    "RewriteContext",
    "RewriteTrace",
    "Rewriter",
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
    "compute_stats",
    "score_defects",
    "score_rephrases",
    "session_examples",
    "simulate",
    "turn_features",
]
