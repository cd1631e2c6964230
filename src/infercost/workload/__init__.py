"""Workload materialisation: prompt sources → concrete requests."""

from infercost.workload.requests import Request, build_requests

__all__ = ["Request", "build_requests"]
