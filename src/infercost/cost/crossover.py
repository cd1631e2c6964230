"""Build versus buy as a function of volume: a self-hosted replica costs by the hour whether busy or not (a step
function of volume: replicas), an API by the token (a line through zero). Below some daily volume the API is
cheaper; above it, self-hosting. Both sides use the cost rows' own formulas, so the curve passes through the
figures the report prints at the workload's demand."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from infercost.cost.fleet import DAYS_PER_MONTH, FleetPolicy, FleetPrices, daily_cost, demand_hours, fleet_bill, \
    replicas_by_hour
from infercost.cost.formulas import hourly_rps
from infercost.cost.pricing import CostRow
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


MAX_PIECES = 2_000_000  # replica-count changes examined for the last crossing (a few seconds at most)


def _sized(row: CostRow, policy: FleetPolicy | None) -> FleetPolicy:
    """The fleet policy the row was priced with: its target utilisation and start-up come with it."""
    policy = policy or FleetPolicy()
    update: dict[str, Any] = {"scale_up_s": row.startup_s or 0.0}
    if row.target_utilisation is not None:
        update["target_utilisation"] = row.target_utilisation
    return policy.model_copy(update=update)


def self_hosted_monthly(row: CostRow, demand: Demand, requests_per_day: float,
                        policy: FleetPolicy | None = None) -> float:
    """A self-hosted row's bill at `requests_per_day`, sized as its cost row was (the demand's shape, minimum
    replicas, scale step, utilisation, start-up, spot floor and interruption)."""
    sized = _sized(row, policy)
    hours = demand_hours(scaled_demand(demand, requests_per_day))
    return fleet_bill(hours, row.capacity_rps, row.pricing, row.hourly_price, row.list_hourly_price, sized,
                      sized.scale_up_s, row.provider).monthly_cost


def api_monthly(row: CostRow, requests_per_day: float) -> float:
    return row.cost_per_1k_requests / 1000 * requests_per_day * DAYS_PER_MONTH


def _monthly(row: CostRow, demand: Demand, volume: float, policy: FleetPolicy | None) -> float:
    return api_monthly(row, volume) if row.kind == "api" else self_hosted_monthly(row, demand, volume, policy)


def crossover(self_row: CostRow, api_row: CostRow, demand: Demand, policy: FleetPolicy | None = None,
              low: float = 1.0, high: float | None = None) -> Crossover:
    """The lowest daily volume in [low, high] above which self-hosting `self_row` costs no more than `api_row`
    (default high: 1,000 times the workload's volume).

    Exact, not sampled: the two can cross many times, and a grid misses the narrow stretches just above each added
    replica where the API wins again. The fleet's bill is a step function of volume: it changes only where some
    hour's rate crosses a multiple of a scale step's capacity, and each hour's rate is proportional to the volume.
    On each step the API (a line through zero) is cheaper below the volume where its bill reaches the step's; the
    last such volume is the cross-over. Past a bound (the saving per request at scale has paid for the rounding of
    every hour and the floor) self-hosting always wins, so only the steps below it are examined."""
    sized = _sized(self_row, policy)
    base = daily_volume(demand)
    high = high or (base * 1000 if base else 1e9)
    price = api_row.cost_per_1k_requests / 1000  # per request
    if not self_row.hourly_price:
        return Crossover(requests_per_day=low, self_hosted_cheaper_above=True,
                         note=f"self-hosting costs nothing by the hour, so it is cheaper than {api_row.deployment} "
                              "at every volume")
    unit = demand_hours(scaled_demand(demand, 1.0))  # hourly rates per request a day
    share = np.asarray(unit.sizing_rps)
    prices = FleetPrices.of(self_row.pricing, self_row.hourly_price, self_row.list_hourly_price, sized,
                            self_row.provider)
    per_replica = self_row.capacity_rps * sized.target_utilisation
    up = sized.scale_up_s / 3600.0
    rises = float(np.maximum(0, share - np.roll(share, 1)).sum())
    # a day's cost per request a day at scale: the fleet's replica-hours (and the start-ups of its rises)
    at_scale = prices.fleet_hourly * (share.sum() + up * rises) / per_replica
    if not sized.autoscale or self_row.pricing.startswith("reserved"):
        at_scale = prices.fleet_hourly * 24 * share.max() / per_replica
    if at_scale >= price:
        return Crossover(requests_per_day=None, self_hosted_cheaper_above=False,
                         note=f"self-hosting never beats {api_row.deployment}: even at scale a request costs "
                              f"${at_scale:.6f} on replicas sized for this traffic against ${price:.6f} from the API")
    if self_hosted_monthly(self_row, demand, high, sized) > api_monthly(api_row, high):
        return Crossover(requests_per_day=None, self_hosted_cheaper_above=False,
                         note=f"{api_row.deployment} stays cheaper up to {high:,.0f} requests/day")
    # past this volume the rounding of each hour (a step, the minimum and the floor, each with a start-up) costs
    # less than the saving per request at scale
    rounding = 24 * (sized.min_replicas + 2 * sized.scale_step) * (1 + 2 * up) * max(prices.floor_hourly,
                                                                                     prices.fleet_hourly)
    bound = min(high, rounding / (price - at_scale))
    ks = [np.arange(1, int(bound * a / (per_replica * sized.scale_step)) + 2) for a in share if a > 0]
    if sum(len(k) for k in ks) > MAX_PIECES:
        return Crossover(requests_per_day=None, self_hosted_cheaper_above=False,
                         note=f"too many fleet sizes below {bound:,.0f} requests/day to find the cross-over with "
                              f"{api_row.deployment} exactly")
    edges = np.unique(np.concatenate([k * per_replica * sized.scale_step / a for k, a in zip(ks, share[share > 0])]
                                     + [np.array([low, bound])]))
    edges = edges[(edges >= low) & (edges <= bound)]
    # each step's cost, read inside it (a count changes just past a multiple of a step)
    lower, upper = edges[:-1], edges[1:]
    n = replicas_by_hour(((lower + upper) / 2)[:, None] * share[None, :], self_row.capacity_rps, sized,
                         self_row.pricing)
    cost, _ = daily_cost(n, prices, sized.scale_up_s)
    reach = cost / price  # the daily volume at which the API's bill reaches each step's
    cheaper = reach > lower
    last = float(np.minimum(upper, reach)[cheaper].max()) if cheaper.any() else None
    if last is None:
        return Crossover(requests_per_day=low, self_hosted_cheaper_above=True,
                         note=f"self-hosting is cheaper than {api_row.deployment} at every volume from {low:,.0f} "
                              "requests/day")
    return Crossover(requests_per_day=last, self_hosted_cheaper_above=True,
                     note=f"self-hosting is cheaper than {api_row.deployment} above {last:,.0f} requests/day; "
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
