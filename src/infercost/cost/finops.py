"""FinOps views over cost rows: showback by any tag, the budget's status against its thresholds, and the value a
workload returns for what it costs."""

from __future__ import annotations

from typing import Iterable, Literal

import pandas as pd
from pydantic import BaseModel

from infercost.cost.formulas import HOURS_PER_MONTH, break_even_requests
from infercost.cost.pricing import CostRow
from infercost.spec.workload import Budget, Value


def cost_frame(rows: Iterable[CostRow]) -> pd.DataFrame:
    """Cost rows as a table, each tag its own `tag.<key>` column."""
    records = []
    for r in rows:
        d = r.model_dump()
        tags = d.pop("tags")
        d.update({f"tag.{k}": v for k, v in tags.items()})
        records.append(d)
    return pd.DataFrame(records)


def planned_rows(rows: Iterable[CostRow], pricing: str = "on_demand") -> list[CostRow]:
    """The plan to show back: per workload, its cheapest row with a monthly cost under `pricing` (the alternatives
    beside it are options, not spend, and must not be added up)."""
    best: dict[str, CostRow] = {}
    for r in rows:
        if r.pricing != pricing or r.monthly_cost is None:
            continue
        if r.workload not in best or r.monthly_cost < best[r.workload].monthly_cost:
            best[r.workload] = r
    return list(best.values())


def showback(rows: Iterable[CostRow], by: str | list[str], pricing: str = "on_demand") -> pd.DataFrame:
    """Monthly cost and requests per value of the tag(s) `by` (e.g. team, product), over each workload's planned
    row. Workloads without the tag are grouped under "(untagged)" so nothing drops out of the total."""
    keys = [by] if isinstance(by, str) else list(by)
    frame = cost_frame(planned_rows(rows, pricing))
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "monthly_cost", "monthly_requests", "workloads", "share"])
    for key in keys:
        col = f"tag.{key}"
        frame[key] = frame[col].fillna("(untagged)") if col in frame else "(untagged)"
    grouped = frame.groupby(keys, dropna=False).agg(
        monthly_cost=("monthly_cost", "sum"), monthly_requests=("monthly_requests", "sum"),
        workloads=("workload", "nunique"),
    ).reset_index()
    total = grouped["monthly_cost"].sum()
    grouped["share"] = grouped["monthly_cost"] / total if total else 0.0
    return grouped.sort_values("monthly_cost", ascending=False, ignore_index=True)


class BudgetStatus(BaseModel):
    status: Literal["ok", "warn", "breach"]
    monthly_cost: float
    budget: float
    used: float  # monthly_cost / budget
    headroom: float  # budget - monthly_cost (negative when over)
    message: str


def budget_status(monthly_cost: float, budget: Budget) -> BudgetStatus:
    used = monthly_cost / budget.monthly
    if used >= budget.breach_at:
        status, verb = "breach", f"at or over the breach threshold ({budget.breach_at:.0%})"
    elif used >= budget.warn_at:
        status, verb = "warn", f"past the warning threshold ({budget.warn_at:.0%})"
    else:
        status, verb = "ok", f"under the warning threshold ({budget.warn_at:.0%})"
    return BudgetStatus(
        status=status, monthly_cost=monthly_cost, budget=budget.monthly, used=used,
        headroom=budget.monthly - monthly_cost,
        message=f"{monthly_cost:,.2f} of {budget.monthly:,.2f} {budget.currency}/month ({used:.0%}): {verb}",
    )


class ValueFigures(BaseModel):
    monthly_value: float | None
    monthly_cost: float | None
    net_monthly_value: float | None
    roi: float | None  # net value / cost
    break_even_requests_per_month: float | None  # None: never breaks even
    note: str


def value_figures(row: CostRow, value: Value) -> ValueFigures:
    """Value and ROI at the workload's demand. Break-even volume: for self-hosting, the requests per month at which
    value pays for the smallest fleet (one replica, or min replicas) around the clock; for an API, any volume
    breaks even if a request is worth more than it costs."""
    cost = row.monthly_cost
    value_m = value.per_request * row.monthly_requests if row.monthly_requests is not None else None
    net = value_m - cost if value_m is not None and cost is not None else None
    roi = net / cost if net is not None and cost else None
    if row.kind == "api":
        per_request = row.cost_per_1k_requests / 1000
        be = 0.0 if value.per_request > per_request else None
        note = ("a request is worth more than its token cost: profitable at any volume" if be == 0.0
                else "each request costs more in tokens than it is worth")
    else:
        fixed = (row.hourly_price or 0) * HOURS_PER_MONTH  # one replica around the clock
        per_request = (row.cost_per_1k_at_capacity or row.cost_per_1k_requests) / 1000  # every replica busy
        be = break_even_requests(value.per_request, fixed)
        if be is not None and value.per_request < per_request:
            be = None  # even a full replica costs more per request than a request is worth
        capacity_month = (row.capacity_rps or 0) * (row.target_utilisation or 1) * 3600 * HOURS_PER_MONTH
        note = (f"one replica ({fixed:,.2f}/month) pays for itself from {be:,.0f} requests/month "
                f"(it serves up to {capacity_month:,.0f})" if be is not None
                else "at full utilisation a request still costs more than it is worth")
    return ValueFigures(monthly_value=value_m, monthly_cost=cost, net_monthly_value=net, roi=roi,
                        break_even_requests_per_month=be, note=note)
