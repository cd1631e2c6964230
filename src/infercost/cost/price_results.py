"""Pricing stored results: each capacity (or run) directory on the offers its hardware matches (or the ones asked
for), beside hosted APIs at its measured token counts, with budget and value figures. `infercost cost` prints it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel

from infercost.cost.catalog import Catalog, Offer
from infercost.cost.finops import BudgetStatus, ValueFigures, budget_status, value_figures
from infercost.cost.inputs import load_priced_input
from infercost.cost.placement import matching_offers
from infercost.cost.pricing import CostRow, FleetPolicy, Throughput, api_cost_row, cost_rows
from infercost.errors import InputError


class PricedResult(BaseModel):
    input: str
    selection: str  # how the offers were chosen
    throughput: Throughput
    rows: list[CostRow]  # self-hosted rows cheapest first, then the APIs asked for
    budget: dict[int, BudgetStatus]  # by index into rows
    value: list[tuple[CostRow, ValueFigures]]  # the cheapest self-hosted row and the cheapest API

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "selection": self.selection, "rows": [r.model_dump(mode="json") for r in self.rows],
                "budget": {str(i): b.model_dump() for i, b in self.budget.items()},
                "value": [dict(sku=r.sku, pricing=r.pricing, **v.model_dump()) for r, v in self.value]}


def price_result(path: str | Path, catalog: Catalog, *, filters: dict[str, str] | None = None,
                 policy: FleetPolicy | None = None, pricing: Sequence[str] = (), extra_offers: Sequence[Offer] = (),
                 apis: Sequence[str] = (), cached_share: float = 0.0, top: int | None = None) -> PricedResult:
    """`filters` (provider, region, accelerator, sku) choose the offers instead of the measured hardware;
    `extra_offers` (owned servers) are priced beside them; `apis` are PROVIDER/MODEL hosted-model prices."""
    item = load_priced_input(path)
    if filters:
        offers, selection = catalog.find(**filters), "offers chosen by the filters given: " + ", ".join(
            f"{k} {v}" for k, v in filters.items())
    else:
        offers, selection = matching_offers(catalog, item.throughput.hardware, item.throughput.engine,
                                            item.peak_rss_bytes, item.gpus_used)
    offers = [*offers, *extra_offers]
    if not offers:
        raise InputError(f"no catalog offer to price this result on ({selection})", source=str(path))
    rows = sorted(cost_rows(item.throughput, offers, item.workload.demand, policy or FleetPolicy(), tuple(pricing)),
                  key=lambda r: r.cost_per_1k_requests)
    rows = rows[:top] if top else rows
    t = item.throughput
    api_rows = []
    for spec in apis:
        provider, _, model = spec.partition("/")
        price = catalog.token_price(provider, model)
        if price is None:
            raise InputError(f"no token price for {spec!r} (see `infercost catalog list`)", field="--api")
        if t.mean_input_tokens is None or t.mean_output_tokens is None:
            raise InputError("the result has no token counts to price an API with", source=str(path))
        api_rows.append(api_cost_row(price, item.workload.name, t.tags, t.mean_input_tokens, t.mean_output_tokens,
                                     item.workload.demand, cached_share, token_source=f"measured in {t.evidence}"))
    shown = rows + sorted(api_rows, key=lambda r: r.cost_per_1k_requests)
    budget = {}
    if item.workload.budget is not None:
        budget = {i: budget_status(r.monthly_cost, item.workload.budget) for i, r in enumerate(shown)
                  if r.monthly_cost is not None}
    value = []
    if item.workload.value is not None:
        value = [(r, value_figures(r, item.workload.value)) for r in [*rows[:1], *api_rows[:1]]]
    return PricedResult(input=str(path), selection=selection, throughput=t, rows=shown, budget=budget, value=value)
