"""Metrics with vLLM's definitions, and the run summary."""

from infercost.metrics.summary import RunSummary, SloCheck, summarize
from infercost.metrics.units import METRICS, Metric

__all__ = ["METRICS", "Metric", "RunSummary", "SloCheck", "summarize"]
