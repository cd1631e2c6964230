"""Build versus buy as a function of volume: a self-hosted replica costs by the hour whether busy or not (a step
function of volume: replicas), an API by the token (a line through zero). Below some daily volume the API is
cheaper; above it, self-hosting. Both sides use the cost rows' own formulas, so the curve passes through the
figures the report prints at the workload's demand."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from infercost.cost.formulas import HOURS_PER_MONTH, hourly_rps
from infercost.cost.pricing import CostRow, FleetPolicy, demand_figures
from infercost.spec.workload import Demand

SCAN_POINTS = 400


class Crossover(BaseModel):
    requests_per_day: float | None  # above this daily volume self-hosting stays cheaper (over the scanned range)
    self_hosted_cheaper_above: bool
    note: str


def daily_volume(demand: Demand) -> float | None:
    """The workload's requests per day: as given; else the profile's day at peak_rps; else peak_rps around the
    clock (which assumes flat traffic at the peak: an upper bound)."""
    if demand.requests_per_day:
        return demand.requests_per_day
    if demand.peak_rps and demand.hourly_profile:
        return sum(hourly_rps(demand.hourly_profile, None, demand.peak_rps)) * 3600
    if demand.peak_rps:
        return demand.peak_rps * 86400
    return None


def scaled_demand(demand: Demand, requests_per_day: float) -> Demand:
    """The workload's demand shape (hourly profile, peak-to-mean ratio) at another daily volume."""
    base = daily_volume(demand)
    if not base:
        return Demand(requests_per_day=requests_per_day)
    f = requests_per_day / base
    return demand.model_copy(update={"requests_per_day": requests_per_day,
                                     "peak_rps": demand.peak_rps * f if demand.peak_rps else None})


def self_hosted_monthly(row: CostRow, demand: Demand, requests_per_day: float,
                        policy: FleetPolicy | None = None) -> float:
    """A self-hosted row's monthly cost at `requests_per_day`, sized as its cost row was (replicas per hour on the
    profile, minimum replicas, utilisation)."""
    policy = policy or FleetPolicy()
    if row.target_utilisation is not None:
        policy = policy.model_copy(update={"target_utilisation": row.target_utilisation})
    _, hours, _, _ = demand_figures(scaled_demand(demand, requests_per_day), row.capacity_rps, policy)
    return row.hourly_price * (hours if hours is not None else 24.0) * HOURS_PER_MONTH / 24


def api_monthly(row: CostRow, requests_per_day: float) -> float:
    return row.cost_per_1k_requests / 1000 * requests_per_day * HOURS_PER_MONTH / 24


def _monthly(row: CostRow, demand: Demand, volume: float, policy: FleetPolicy | None) -> float:
    return api_monthly(row, volume) if row.kind == "api" else self_hosted_monthly(row, demand, volume, policy)


def crossover(self_row: CostRow, api_row: CostRow, demand: Demand, policy: FleetPolicy | None = None,
              low: float = 1.0, high: float | None = None) -> Crossover:
    """The lowest daily volume above which self-hosting `self_row` costs no more than `api_row`, over [low, high]
    (default: up to 1,000 times the workload's volume)."""
    base = daily_volume(demand)
    high = high or (base * 1000 if base else 1e9)
    u = self_row.target_utilisation or (policy or FleetPolicy()).target_utilisation
    marginal = self_row.hourly_price / (self_row.capacity_rps * u * 3600)  # $ per request on a busy replica
    api_per_request = api_row.cost_per_1k_requests / 1000
    if marginal >= api_per_request:
        return Crossover(requests_per_day=None, self_hosted_cheaper_above=False,
                         note=f"self-hosting never beats {api_row.deployment}: a request costs more on a busy "
                              f"replica (${marginal:.6f}) than the API charges (${api_per_request:.6f})")
    volumes = [low * (high / low) ** (i / (SCAN_POINTS - 1)) for i in range(SCAN_POINTS)]
    cheaper = [self_hosted_monthly(self_row, demand, v, policy) <= api_monthly(api_row, v) for v in volumes]
    if all(cheaper):
        return Crossover(requests_per_day=low, self_hosted_cheaper_above=True,
                         note=f"self-hosting is cheaper than {api_row.deployment} at every volume from {low:,.0f} "
                              "requests/day")
    if not cheaper[-1]:
        return Crossover(requests_per_day=None, self_hosted_cheaper_above=False,
                         note=f"{api_row.deployment} stays cheaper up to {high:,.0f} requests/day")
    last = max(i for i, c in enumerate(cheaper) if not c)  # the API's last win: the crossing is just above it
    lo, hi = volumes[last], volumes[last + 1]
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if self_hosted_monthly(self_row, demand, mid, policy) <= api_monthly(api_row, mid):
            hi = mid
        else:
            lo = mid
    return Crossover(requests_per_day=hi, self_hosted_cheaper_above=True,
                     note=f"self-hosting is cheaper than {api_row.deployment} above {hi:,.0f} requests/day; "
                          "below it, the API is")


def cost_curve(rows: list[CostRow], demand: Demand, volumes: list[float],
               policy: FleetPolicy | None = None) -> list[dict[str, Any]]:
    """Monthly cost of each row at each daily volume, for the chart."""
    out = []
    for row in rows:
        label = row.deployment if row.kind == "api" else \
            f"{row.deployment} ({row.provider} {row.sku}, {row.pricing.replace('_', ' ')})"
        out.append({"label": label, "kind": "api" if row.kind == "api" else "self-hosted",
                    "points": [(v, _monthly(row, demand, v, policy)) for v in volumes]})
    return out
