"""Terminal tables for the catalog and for cost rows."""

from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.table import Table

from infercost.cost.catalog import Offer, TokenPrice
from infercost.cost.finops import BudgetStatus, ValueFigures
from infercost.cost.pricing import CostRow


def _money(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def offers_table(offers: Iterable[Offer]) -> Table:
    table = Table(title="price catalog: offers ($/hour per instance)", title_justify="left")
    for col in ("provider", "region", "sku", "accelerator", "vCPU", "RAM GB", "on-demand", "spot", "1y", "3y",
                "as of"):
        table.add_column(col, overflow="fold")
    for o in offers:
        acc = "—" if o.accelerator == "none" else f"{o.accelerator_count}x {o.accelerator}"
        table.add_row(o.provider, o.region, o.sku, acc, _num(o.vcpus), _num(o.ram_gb), _money(o.on_demand_hourly, 3),
                      _money(o.spot_hourly, 3), _money(o.reserved_1y_hourly, 3), _money(o.reserved_3y_hourly, 3),
                      o.as_of.isoformat())
    return table


def token_prices_table(prices: Iterable[TokenPrice]) -> Table:
    table = Table(title="price catalog: model APIs ($ per 1M tokens)", title_justify="left")
    for col in ("provider", "model", "input", "cached input", "output", "as of"):
        table.add_column(col, overflow="fold")
    for t in prices:
        table.add_row(t.provider, t.model, _money(t.input_per_1m, 3), _money(t.cached_input_per_1m, 3),
                      _money(t.output_per_1m, 3), t.as_of.isoformat())
    return table


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:g}"


def cost_table(rows: list[CostRow], title: str, budget: dict[int, BudgetStatus] | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    cols = ["kind", "provider / region", "sku", "pricing", "$/h", "$/1k req", "$/1k at cap", "$/1M out tok",
            "replicas", "$/month"]
    ranged = any(r.cost_per_1k_requests_low is not None or r.cost_per_1k_requests_high is not None for r in rows)
    if ranged:  # where the capacity has an interval, the cost has one: its low end at the high capacity
        cols.insert(cols.index("$/1k req") + 1, "$/1k range")
    if budget:
        cols.append("budget")
    for col in cols:
        table.add_column(col, overflow="fold", justify="right" if col.startswith("$") else "left")
    colour = {"ok": "green", "warn": "yellow", "breach": "red"}
    for i, r in enumerate(rows):
        cells = [r.kind, f"{r.provider} {r.region}", r.sku, r.pricing.replace("_", " "), _money(r.hourly_price, 3),
                 _money(r.cost_per_1k_requests), _money(r.cost_per_1k_at_capacity),
                 _money(r.cost_per_1m_output_tokens, 2),
                 "—" if r.replicas_at_peak is None else str(r.replicas_at_peak), _money(r.monthly_cost, 0)]
        if ranged:
            cells.insert(cols.index("$/1k range"), f"{_money(r.cost_per_1k_requests_low)}–"
                                                   f"{_money(r.cost_per_1k_requests_high)}")
        if budget:
            b = budget.get(i)
            cells.append(f"[{colour[b.status]}]{b.status} {b.used:.0%}[/]" if b else "—")
        table.add_row(*cells)
    return table


def print_cost(console: Console, rows: list[CostRow], title: str, selection: str, basis: str,
               budget: dict[int, BudgetStatus] | None = None, value: list[tuple[CostRow, ValueFigures]] = ()) -> None:
    console.print(cost_table(rows, title, budget))
    console.print(f"capacity: {basis}")
    console.print(f"placement: {selection}")
    if rows and rows[0].monthly_cost_basis:
        console.print(f"month: {rows[0].monthly_cost_basis}")
        console.print("$/1k req: the month's bill over the requests served; $/1k at cap: every replica busy at the "
                      "target utilisation (the marginal cost at scale)")
    elif rows:
        console.print("$/1k req: at capacity (the workload gives no demand, so no bill)")
    for row, v in value:
        roi = "—" if v.roi is None else f"{v.roi:.0%}"
        console.print(f"value ({row.sku}, {row.pricing.replace('_', ' ')}): {_money(v.monthly_value, 0)}/month, net "
                      f"{_money(v.net_monthly_value, 0)}, ROI {roi}; {v.note}")
