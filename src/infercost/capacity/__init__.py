"""Capacity under SLO: the highest load at which every SLO percentile holds, found by probing real (or projected)
runs.
`infercost.capacity(workload, deployment)` measures it (see infercost.api.capacity)."""

from infercost import callable_package

from infercost.capacity.result import CapacityOptions, CapacityResult, Probe
from infercost.capacity.search import search_capacity

__all__ = ["CapacityOptions", "CapacityResult", "Probe", "search_capacity"]

callable_package(__name__)
