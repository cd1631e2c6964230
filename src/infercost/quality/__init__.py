"""Quality gate: scorers, cached greedy answers, evaluation against references or a baseline deployment."""

from infercost.quality.evaluate import QualityResult, QualitySummary, evaluate, evaluate_sync
from infercost.quality.scorers import SCORERS, get_scorer

__all__ = ["SCORERS", "QualityResult", "QualitySummary", "evaluate", "evaluate_sync", "get_scorer"]
