"""The cost formulas, in one place and in the units a FinOps reader uses. Hours per month is 730 (8,760 / 12), the
convention cloud price lists use."""

from __future__ import annotations

import math
from typing import Sequence

HOURS_PER_MONTH = 730.0


def cost_per_1k_requests(hourly: float, capacity_rps: float, utilisation: float = 1.0) -> float:
    """$ per 1,000 requests from one replica's hourly price and the request rate it sustains under the SLO, run at
    `utilisation` of that capacity (headroom: 0.7 keeps 30% spare)."""
    _check(capacity_rps, utilisation)
    return hourly / (capacity_rps * utilisation * 3600.0) * 1000.0


def cost_per_1m_tokens(hourly: float, tokens_per_s: float, utilisation: float = 1.0) -> float:
    _check(tokens_per_s, utilisation)
    return hourly / (tokens_per_s * utilisation * 3600.0) * 1e6


def replicas_for_peak(peak_rps: float, capacity_rps: float, utilisation: float = 1.0, min_replicas: int = 1) -> int:
    """Replicas so that the peak runs at no more than `utilisation` of each replica's capacity."""
    _check(capacity_rps, utilisation)
    return max(min_replicas, math.ceil(peak_rps / (capacity_rps * utilisation) - 1e-9))


def hourly_rps(profile: Sequence[float], requests_per_day: float | None = None, peak_rps: float | None = None,
               ) -> list[float]:
    """Request rate in each hour of the day from the 24 relative weights: scaled so the day adds up to
    `requests_per_day`, or else so the busiest hour runs at `peak_rps`."""
    total, top = float(sum(profile)), float(max(profile))
    if requests_per_day is not None:
        return [requests_per_day * w / total / 3600.0 for w in profile]
    if peak_rps is not None:
        return [peak_rps * w / top for w in profile]
    raise ValueError("a demand profile needs requests_per_day or peak_rps")


def autoscaled_replicas(rates: Sequence[float], capacity_rps: float, utilisation: float = 1.0,
                        min_replicas: int = 1, step: int = 1) -> list[int]:
    """Replicas per hour when scaling follows demand: enough for that hour's rate, rounded up to the scale-up
    granularity `step`, never below `min_replicas`."""
    out = []
    for rate in rates:
        need = math.ceil(rate / (capacity_rps * utilisation) - 1e-9)
        need = math.ceil(need / step) * step
        out.append(max(min_replicas, need))
    return out


def monthly_cost(hourly: float, replica_hours_per_day: float) -> float:
    return hourly * replica_hours_per_day * HOURS_PER_MONTH / 24.0


def api_cost_per_request(input_tokens: float, output_tokens: float, input_per_1m: float, output_per_1m: float,
                         cached_input_per_1m: float | None = None, cached_share: float = 0.0) -> float:
    """$ per request from token counts and list prices; `cached_share` of the input billed at the cached price."""
    cached_price = cached_input_per_1m if cached_input_per_1m is not None else input_per_1m
    cached = input_tokens * cached_share
    return ((input_tokens - cached) * input_per_1m + cached * cached_price + output_tokens * output_per_1m) / 1e6


def break_even_requests(value_per_request: float, fixed_monthly: float, marginal_per_request: float = 0.0,
                        ) -> float | None:
    """Monthly requests at which value covers cost: fixed / (value - marginal); None when each request costs more
    than it is worth (no volume breaks even)."""
    margin = value_per_request - marginal_per_request
    if margin <= 0:
        return None
    return fixed_monthly / margin


def _check(capacity: float, utilisation: float) -> None:
    if capacity <= 0:
        raise ValueError(f"capacity must be positive, got {capacity}")
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation}")
