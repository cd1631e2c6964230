"""Build versus buy: the cheapest option that meets every constraint, self-hosted or a hosted API; the daily volume
above which self-hosting beats the best API; and each option's monthly cost across volumes, for the chart. APIs the
study did not search are still shown, priced at the winner's token counts, and labelled as not measured."""

from __future__ import annotations

import math

from infercost.cost.catalog import Catalog
from infercost.cost.crossover import cost_curve, crossover, daily_volume
from infercost.cost.fleet import FleetPolicy
from infercost.cost.pricing import CostRow, api_cost_row
from infercost.search.evaluate import TrialOutcome, rank
from infercost.search.recommendation import BuildOrBuy, BuyOption, Unverified
from infercost.spec.workload import Workload

CURVES = 3  # self-hosted configurations and APIs drawn each


def _objective(o: TrialOutcome) -> tuple:
    """Cheapest first on the study's objective (the bill at the workload's demand where there is one): the order
    the recommendation itself is chosen in, so this section can only name its winner."""
    return rank(o)


def _option(trial: int | None, o: TrialOutcome) -> BuyOption:
    c = o.cost
    if o.kind == "api":
        latency = o.latency_source or "not measured"
    else:
        latency = f"{o.kind} (capacity {o.capacity_rps:.3g} req/s per replica)" if o.capacity_rps else o.kind
    return BuyOption(trial=trial, label=o.config.label(), kind=o.kind or "", status=o.status,
                     cost_per_1k_requests=c.cost_per_1k_requests if c else None,
                     monthly_cost=c.monthly_cost if c else None, latency=latency, quality=o.quality_source,
                     reason=o.reason)


def _catalog_option(row: CostRow) -> BuyOption:
    return BuyOption(label=f"{row.deployment} API (per token)", kind="api", status="not searched",
                     cost_per_1k_requests=row.cost_per_1k_requests, monthly_cost=row.monthly_cost,
                     latency="not measured", quality="not measured",
                     reason="not in the study's space.apis: cost only, at the recommendation's token counts")


def build_or_buy(rows: list[tuple[int, TrialOutcome]], workload: Workload, catalog: Catalog,
                 in_study: set[str], winner: tuple[int, TrialOutcome] | None = None,
                 policy: FleetPolicy | None = None) -> BuildOrBuy | None:
    """`rows`: every trial with its outcome; `in_study`: the vendor/model names the study searched; `winner`: the
    recommendation (trial, outcome), which this section speaks of: it is the build or the buy, and the other side's
    best is what it is compared with."""
    latest: dict[str, tuple[int, TrialOutcome]] = {}
    for t, o in rows:  # a configuration's latest outcome (one re-judged on quality supersedes the one before)
        if o.cost is not None:
            latest[o.config.key()] = (t, o)
    built = sorted(((t, o) for t, o in latest.values() if o.kind != "api" and o.status == "feasible"),
                   key=lambda x: _objective(x[1]))
    apis = sorted(((t, o) for t, o in latest.values() if o.kind == "api"), key=lambda x: x[1].cost.cost_per_1k_requests)
    bought = sorted(((t, o) for t, o in apis if o.status == "feasible"), key=lambda x: _objective(x[1]))
    if not built and not apis:
        return None
    if winner is not None:  # the recommendation heads its own side
        side = bought if winner[1].kind == "api" else built
        side[:] = [winner] + [x for x in side if x[1].config.key() != winner[1].config.key()]
    demand = workload.demand
    result = BuildOrBuy(demand_requests_per_day=daily_volume(demand))
    result.best_self_hosted = _option(*built[0]) if built else None
    result.apis = [_option(t, o) for t, o in apis]
    tokens = (winner[1] if winner else built[0][1] if built else None)
    tokens = tokens.cost if tokens is not None else None
    if tokens is not None and tokens.mean_input_tokens is not None and tokens.mean_output_tokens is not None:
        others = [api_cost_row(p, workload.name, workload.tags.as_dict(), tokens.mean_input_tokens,
                               tokens.mean_output_tokens, demand, token_source="the recommendation's token counts")
                  for p in catalog.token_prices if f"{p.provider}/{p.model}" not in in_study]
        result.not_searched = [_catalog_option(r) for r in sorted(others, key=lambda r: r.cost_per_1k_requests)[:5]]
    else:
        others = []
    result.best_api = _option(*bought[0]) if bought else None
    _decide(result, winner[1] if winner else None, built, bought, apis)
    api_row = bought[0][1].cost if bought else (apis[0][1].cost if apis else (
        min(others, key=lambda r: r.cost_per_1k_requests) if others else None))
    if built and api_row is not None:
        x = crossover(built[0][1].cost, api_row, demand, policy)
        result.crossover_requests_per_day = x.requests_per_day
        result.crossover_note = x.note
        result.crossover_against = api_row.deployment + ("" if bought else " (not verified: cost only)")
    _curves(result, built, apis, others, demand, policy)
    return result


def _money(v: float) -> str:
    return f"${v:,.0f}" if v >= 100 else f"${v:,.4g}"


def _decide(r: BuildOrBuy, winner: TrialOutcome | None, built, bought, apis) -> None:
    if winner is None:
        r.choice = "none"
        r.verdict = "Neither a self-hosted configuration nor an API met every constraint."
        return
    by_bill = winner.cost is not None and winner.cost.monthly_cost is not None and winner.objective == \
        winner.cost.monthly_cost
    r.basis = "per month at this workload's demand" if by_bill else "per 1k requests at capacity (no demand given)"
    buy = winner.kind == "api"
    other = (built[0][1] if built else None) if buy else (bought[0][1] if bought else None)
    cost = (lambda o: o.cost.monthly_cost) if by_bill else (lambda o: o.objective)
    r.choice = "buy" if buy else "build"
    what = "bought per token" if buy else "self-hosted"
    r.verdict = (f"{r.choice.capitalize()}: {winner.config.label()}, the recommendation, {what}, is the cheapest option "
                 f"that meets every constraint ({_money(cost(winner))} {r.basis})")
    if other is not None and cost(other):
        change = 1 - cost(winner) / cost(other)
        name = "the best self-hosted configuration" if buy else "the best API"
        r.verdict += (f", the same as {name} ({other.config.label()})" if change == 0 else
                      f", {change:.0%} below {name} ({other.config.label()}, {_money(cost(other))})")
        r.verdict += "."
    elif buy:
        r.verdict += "; no self-hosted configuration met them."
    elif apis:
        r.verdict += "; no API met every constraint (" + "; ".join(
            f"{o.config.model}: {(o.reason or '').split(' (')[0]}" for _, o in apis[:3]) + "; see the table)."
    else:
        r.verdict += "."


def _curves(r: BuildOrBuy, built, apis, others: list[CostRow], demand, policy: FleetPolicy | None = None) -> None:
    base = r.demand_requests_per_day
    if not base:
        return
    lo, hi = max(1.0, base / 100), base * 100
    volumes = [lo * (hi / lo) ** (i / 60) for i in range(61)]
    rows = [o.cost for _, o in built[:CURVES]] + [o.cost for _, o in apis[:CURVES]]
    rows += sorted(others, key=lambda x: x.cost_per_1k_requests)[:max(0, CURVES - len(apis))]
    r.curves = cost_curve(rows, demand, volumes, policy)
    for curve in r.curves:
        curve["points"] = [(v, c) for v, c in curve["points"] if c is not None and math.isfinite(c)]
