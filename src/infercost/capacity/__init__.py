"""Capacity under SLO: the highest load at which every SLO percentile holds, found by probing real (or projected)
runs."""

from infercost.capacity.result import CapacityOptions, CapacityResult, Probe
from infercost.capacity.search import search_capacity

__all__ = ["CapacityOptions", "CapacityResult", "Probe", "search_capacity"]
