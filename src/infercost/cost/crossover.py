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


class Crossover(BaseModel):
    requests_per_day: float | None  # above this daily volume self-hosting stays cheaper or equal (up to `high`)
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


def _sized(row: CostRow, policy: FleetPolicy | None) -> FleetPolicy:
    policy = policy or FleetPolicy()
    if row.target_utilisation is not None:
        policy = policy.model_copy(update={"target_utilisation": row.target_utilisation})
    return policy


def _replica_hours(row: CostRow, demand: Demand, requests_per_day: float, policy: FleetPolicy) -> float:
    """Replica-hours a day: a whole number that never falls as volume grows (it is a sum of ceilings)."""
    return demand_figures(scaled_demand(demand, requests_per_day), row.capacity_rps, policy)[1]


def self_hosted_monthly(row: CostRow, demand: Demand, requests_per_day: float,
                        policy: FleetPolicy | None = None) -> float:
    """A self-hosted row's monthly cost at `requests_per_day`, sized as its cost row was (replicas per hour on the
    profile, minimum replicas, utilisation)."""
    hours = _replica_hours(row, demand, requests_per_day, _sized(row, policy))
    return row.hourly_price * hours * HOURS_PER_MONTH / 24


def api_monthly(row: CostRow, requests_per_day: float) -> float:
    return row.cost_per_1k_requests / 1000 * requests_per_day * HOURS_PER_MONTH / 24


def _monthly(row: CostRow, demand: Demand, volume: float, policy: FleetPolicy | None) -> float:
    return api_monthly(row, volume) if row.kind == "api" else self_hosted_monthly(row, demand, volume, policy)


def crossover(self_row: CostRow, api_row: CostRow, demand: Demand, policy: FleetPolicy | None = None,
              low: float = 1.0, high: float | None = None) -> Crossover:
    """The lowest daily volume in [low, high] above which self-hosting `self_row` costs no more than `api_row`
    (default high: 1,000 times the workload's volume).

    Exact, not sampled: the two can cross many times, and a grid misses the narrow stretches just above each added
    replica where the API wins again. The API's bill at V equals n replica-hours a day at V_n = n x hourly / price;
    the API is cheaper just below V_n exactly when the fleet already needs n replica-hours there, so the last
    crossing is the largest such V_n. Beyond a bound (the per-request saving at scale has paid for the rounding of
    every hour) self-hosting always wins; from there, skipping every n the fleet's hours rule out, a few steps
    reach it."""
    sized = _sized(self_row, policy)
    base = daily_volume(demand)
    high = high or (base * 1000 if base else 1e9)
    hourly, price = self_row.hourly_price, api_row.cost_per_1k_requests / 1000
    if not hourly:
        return Crossover(requests_per_day=low, self_hosted_cheaper_above=True,
                         note=f"self-hosting costs nothing by the hour, so it is cheaper than {api_row.deployment} "
                              "at every volume")
    big = 1e12 * self_row.capacity_rps  # replica-hours per request at scale: the rounding is lost at this volume
    at_scale = hourly * _replica_hours(self_row, demand, big, sized) / big
    if at_scale >= price:
        return Crossover(requests_per_day=None, self_hosted_cheaper_above=False,
                         note=f"self-hosting never beats {api_row.deployment}: even at scale a request costs "
                              f"${at_scale:.6f} on replicas sized for this traffic against ${price:.6f} from the API")
    if self_hosted_monthly(self_row, demand, high, sized) > api_monthly(api_row, high):
        return Crossover(requests_per_day=None, self_hosted_cheaper_above=False,
                         note=f"{api_row.deployment} stays cheaper up to {high:,.0f} requests/day")
    # each hour needs at most min_replicas + scale_step replicas over its exact share: past this n the
    # saving at scale outweighs that rounding, so the API cannot win again
    n = min(math.floor(24 * (sized.min_replicas + sized.scale_step) / (1 - at_scale / price)),
            math.floor(high * price / hourly))
    while n >= 1 and n * hourly / price >= low:
        v = n * hourly / price
        need = _replica_hours(self_row, demand, v * (1 - 1e-12), sized)
        if need >= n:
            return Crossover(requests_per_day=v, self_hosted_cheaper_above=True,
                             note=f"self-hosting is cheaper than {api_row.deployment} above {v:,.0f} requests/day; "
                                  "below it, the API is")
        n = min(n - 1, math.floor(need))
    return Crossover(requests_per_day=low, self_hosted_cheaper_above=True,
                     note=f"self-hosting is cheaper than {api_row.deployment} at every volume from {low:,.0f} "
                          "requests/day")


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
