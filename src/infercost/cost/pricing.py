"""Cost rows: one per (configuration, offer, pricing model), with the workload's tags, the price's source and date,
and where the capacity came from. A row answers "what does this workload cost here": per 1k requests, per 1M
tokens, and per month at the workload's demand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from infercost.capacity.result import CapacityResult
from infercost.cost.catalog import Offer, TokenPrice
from infercost.cost.fleet import Bill, FleetPolicy, FleetPrices, api_bill, demand_hours, fleet_bill
from infercost.cost.formulas import api_cost_per_request, cost_per_1k_requests
from infercost.errors import InputError
from infercost.metrics.intervals import Confidence
from infercost.spec.vocabulary import PRICING_MODELS
from infercost.spec.workload import Demand


class Throughput(BaseModel):
    """What one replica sustains, and where that figure comes from."""

    kind: Literal["measured", "projected"]
    capacity_rps: float = Field(gt=0)
    mean_input_tokens: float | None = None
    mean_output_tokens: float | None = None
    workload: str
    deployment: str
    basis: str  # e.g. "capacity under SLO (4 probes, precision 14%)" or "throughput of one run, not a capacity"
    evidence: str | None = None  # directory of the capacity result or run
    tags: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)
    engine: dict[str, Any] = Field(default_factory=dict)
    measured_at: str | None = None
    # where the capacity may lie: measured, the highest load that always passed and the lowest that always failed;
    # projected, simulated at the error band's slow and fast ends
    capacity_low_rps: float | None = None
    capacity_high_rps: float | None = None
    confidence: Confidence | None = None
    # what a replica added by the autoscaler is paid before it serves: the measured start-up where there is one,
    # else projected from the weights (see FleetPolicy.startup_s)
    startup_s: float | None = None
    weights_gb: float | None = None


class CostRow(BaseModel):
    kind: Literal["measured", "projected", "api"]
    workload: str
    deployment: str
    tags: dict[str, str]
    provider: str
    region: str
    region_name: str | None
    sku: str
    accelerator: str
    accelerator_count: int
    pricing: str
    hourly_price: float | None  # per replica; None for token-priced APIs
    list_hourly_price: float | None  # on-demand, for savings and FOCUS ListCost
    currency: str
    capacity_rps: float | None
    target_utilisation: float | None
    # the headline: the bill at the workload's demand over the requests served (effective); where the workload gives
    # no demand, the cost at capacity (cost_per_1k_basis says which)
    cost_per_1k_requests: float
    cost_per_1k_basis: Literal["effective", "at capacity"] = "at capacity"
    # the marginal cost at scale: every replica busy at the target utilisation of its SLO capacity (an API: its
    # list price per request)
    cost_per_1k_at_capacity: float | None = None
    cost_per_1m_output_tokens: float | None
    cost_per_1m_total_tokens: float | None
    mean_input_tokens: float | None
    mean_output_tokens: float | None
    peak_rps: float | None = None
    replicas_at_peak: int | None = None
    replica_hours_per_day: float | None = None
    monthly_requests: float | None = None
    monthly_cost: float | None = None
    monthly_cost_basis: str | None = None
    replicas_by_hour: list[int] | None = None
    startup_replica_hours_per_day: float | None = None  # paid while added replicas start
    spot_replica_hours_per_day: float | None = None  # the rest of a spot fleet runs on demand (its floor)
    effective_hourly_price: float | None = None  # spot: interrupted hours served on demand
    startup_s: float | None = None
    startup_basis: str | None = None
    weights_gb: float | None = None
    spot_assumption: str | None = None
    input_per_1m: float | None = None  # token-priced APIs: list prices, and the input price after cache discounts
    effective_input_per_1m: float | None = None
    output_per_1m: float | None = None
    price_source: str
    price_as_of: str
    capacity_basis: str | None
    evidence: str | None
    # the same figures at the ends of the capacity's interval: the low cost is at the high capacity
    cost_per_1k_requests_low: float | None = None
    cost_per_1k_requests_high: float | None = None
    monthly_cost_low: float | None = None
    monthly_cost_high: float | None = None
    cost_per_1k_at_capacity_low: float | None = None
    cost_per_1k_at_capacity_high: float | None = None
    confidence: Confidence | None = None

    def throughput(self) -> "Throughput":
        """What one replica sustains, as this row priced it (to price it again on other offers or demand)."""
        return Throughput(kind=self.kind, capacity_rps=self.capacity_rps, mean_input_tokens=self.mean_input_tokens,
                          mean_output_tokens=self.mean_output_tokens, workload=self.workload,
                          deployment=self.deployment, basis=self.capacity_basis or "", evidence=self.evidence,
                          tags=self.tags, confidence=self.confidence, weights_gb=self.weights_gb,
                          startup_s=self.startup_s if self.startup_basis == "measured start-up" else None)


def throughput_from_capacity(result: CapacityResult, directory: str | Path | None = None) -> Throughput:
    if result.capacity_rps is None:
        raise InputError(f"no capacity to price: {result.status} ({result.reason})",
                         source=str(directory or result.workload))
    best = result.best_probe()
    probe_dir = result.probe_dir(best, directory) if best is not None else None
    tokens: dict[str, Any] = {}
    if probe_dir is not None and (probe_dir / "summary.json").is_file():
        tokens = json.loads((probe_dir / "summary.json").read_text())
    prov = result.provenance
    runs = sum(p.load == result.capacity_load for p in result.probes)
    confidence = Confidence.measured(best.completed if best else None, runs) if result.kind == "measured" else None
    return Throughput(
        capacity_low_rps=getattr(result, "capacity_low_rps", None),
        capacity_high_rps=getattr(result, "capacity_high_rps", None), confidence=confidence,
        kind=result.kind, capacity_rps=result.capacity_rps, mean_input_tokens=tokens.get("mean_input_tokens"),
        mean_output_tokens=tokens.get("mean_output_tokens"), workload=result.workload, deployment=result.deployment,
        basis=(f"capacity under SLO: {len(result.probes)} probes of {result.requests_per_probe} requests, bracket "
               f"{(result.precision_reached or 0):.0%}" + (f" ({result.status})" if result.status != "found" else "")),
        evidence=str(directory or prov.get("capacity_dir") or ""), tags=result.tags,
        hardware=prov.get("hardware", {}), engine=prov.get("engine", {}), measured_at=prov.get("measured_at"),
        startup_s=prov.get("startup_s"),
    )


def throughput_from_run(manifest: dict[str, Any], summary: dict[str, Any], directory: str | Path) -> Throughput:
    rps = summary.get("request_throughput_rps") or 0
    if rps <= 0:
        raise InputError("the run served no requests: nothing to price", source=str(directory))
    return Throughput(
        kind="measured", capacity_rps=rps, mean_input_tokens=summary.get("mean_input_tokens"),
        mean_output_tokens=summary.get("mean_output_tokens"), workload=manifest["workload"]["name"],
        deployment=manifest["deployment"].get("name") or f"{manifest['deployment']['model']}-"
                                                         f"{manifest['deployment']['engine']}",
        basis=("throughput of one run at its offered load, not a capacity under SLO"
               + ("" if summary.get("slo_met") else "; the run did NOT meet its SLO")),
        evidence=str(directory), tags=manifest.get("tags", {}), hardware=manifest.get("hardware", {}),
        engine=manifest.get("engine", {}), measured_at=manifest.get("ended_at"), startup_s=manifest.get("startup_s"),
    )


def cost_rows(throughput: Throughput, offers: list[Offer], demand: Demand | None = None,
              policy: FleetPolicy | None = None, pricing: tuple[str, ...] = PRICING_MODELS) -> list[CostRow]:
    """Every offer x pricing model that has a price. The capacity is per replica: the offer must be the hardware
    the throughput was measured (or projected) on, which the caller chooses. With a demand, each row carries the
    month's bill (see `fleet_bill`) and its headline per 1k requests is that bill over the requests served; the
    same bill at the capacity interval's ends gives the interval."""
    policy = policy or FleetPolicy()
    hours = demand_hours(demand)
    tp = throughput
    cap, u = tp.capacity_rps, policy.target_utilisation
    startup, startup_basis = policy.startup_s(tp.startup_s, tp.weights_gb)
    rows = []
    for offer in offers:
        for model in pricing:
            hourly = offer.hourly(model)
            if hourly is None:
                continue
            bills: dict[str, Bill | None] = {}
            for end, capacity in (("central", cap), ("low", tp.capacity_low_rps), ("high", tp.capacity_high_rps)):
                ok = hours is not None and capacity is not None and capacity > 0
                bills[end] = fleet_bill(hours, capacity, model, hourly, offer.on_demand_hourly, policy, startup,
                                        offer.provider) if ok else None
            eff_hourly = FleetPrices.of(model, hourly, offer.on_demand_hourly, policy, offer.provider).fleet_hourly

            def at_capacity(c: float | None) -> float | None:
                return cost_per_1k_requests(eff_hourly, c, u) if c else None

            bill = bills["central"]
            scale = _per_request_scale(bill, tp, cap, u, eff_hourly)
            headline = bill.effective_cost_per_1k if bill is not None and bill.effective_cost_per_1k else None
            rows.append(CostRow(
                kind=tp.kind, workload=tp.workload, deployment=tp.deployment,
                tags=tp.tags, provider=offer.provider, region=offer.region, region_name=offer.region_name,
                sku=offer.sku, accelerator=offer.accelerator, accelerator_count=offer.accelerator_count,
                pricing=model, hourly_price=hourly, list_hourly_price=offer.on_demand_hourly,
                currency=offer.currency, capacity_rps=cap, target_utilisation=u,
                cost_per_1k_requests=headline if headline is not None else at_capacity(cap),
                cost_per_1k_basis="effective" if headline is not None else "at capacity",
                cost_per_1k_at_capacity=at_capacity(cap),
                cost_per_1m_output_tokens=scale * 1e6 / tp.mean_output_tokens if tp.mean_output_tokens else None,
                cost_per_1m_total_tokens=(scale * 1e6 / (tp.mean_output_tokens + tp.mean_input_tokens)
                                          if tp.mean_output_tokens is not None and tp.mean_input_tokens is not None
                                          else None),
                mean_input_tokens=tp.mean_input_tokens, mean_output_tokens=tp.mean_output_tokens,
                peak_rps=hours.peak_rps if hours else None,
                replicas_at_peak=bill.replicas_at_peak if bill else None,
                replica_hours_per_day=bill.replica_hours_per_day if bill else None,
                replicas_by_hour=bill.replicas_by_hour if bill else None,
                startup_replica_hours_per_day=bill.startup_replica_hours_per_day if bill else None,
                spot_replica_hours_per_day=bill.spot_replica_hours_per_day if bill else None,
                monthly_requests=hours.monthly_requests if hours else None,
                monthly_cost=bill.monthly_cost if bill else None, monthly_cost_basis=bill.basis if bill else None,
                effective_hourly_price=eff_hourly, startup_s=startup, startup_basis=startup_basis,
                weights_gb=tp.weights_gb, spot_assumption=bill.spot if bill else None,
                price_source=offer.source, price_as_of=offer.as_of.isoformat(), capacity_basis=tp.basis,
                evidence=tp.evidence,
                cost_per_1k_requests_low=_per_1k(bills["high"]) if hours else at_capacity(tp.capacity_high_rps),
                cost_per_1k_requests_high=_per_1k(bills["low"]) if hours else at_capacity(tp.capacity_low_rps),
                cost_per_1k_at_capacity_low=at_capacity(tp.capacity_high_rps),
                cost_per_1k_at_capacity_high=at_capacity(tp.capacity_low_rps),
                monthly_cost_low=bills["high"].monthly_cost if bills["high"] else None,
                monthly_cost_high=bills["low"].monthly_cost if bills["low"] else None,
                confidence=tp.confidence,
            ))
    return rows


def _per_1k(bill: Bill | None) -> float | None:
    return bill.effective_cost_per_1k if bill is not None else None


def _per_request_scale(bill: Bill | None, tp: Throughput, cap: float, u: float, eff_hourly: float) -> float:
    """$ per request on which the per-token figures rest: the bill's where there is one, else at capacity."""
    if bill is not None and bill.effective_cost_per_1k:
        return bill.effective_cost_per_1k / 1000.0
    return eff_hourly / (cap * u * 3600.0)


def api_cost_row(price: TokenPrice, workload: str, tags: dict[str, str], mean_input_tokens: float,
                 mean_output_tokens: float, demand: Demand | None = None, cached_share: float = 0.0,
                 token_source: str | None = None) -> CostRow:
    """Buying instead of building: the same workload's token counts at a hosted model's list prices, billed on the
    same demand as a fleet (each request, no idle hours). No capacity or replicas: the vendor's rate limits are the
    search's constraint, not a price."""
    per_request = api_cost_per_request(mean_input_tokens, mean_output_tokens, price.input_per_1m, price.output_per_1m,
                                       price.cached_input_per_1m, cached_share)
    hours = demand_hours(demand)
    bill = api_bill(hours, per_request) if hours is not None else None
    tokens = mean_input_tokens + mean_output_tokens
    return CostRow(
        kind="api", workload=workload, deployment=f"{price.provider}/{price.model}", tags=tags,
        provider=price.provider, region="global", region_name=None, sku=price.model, accelerator="none",
        accelerator_count=0, pricing="on_demand", hourly_price=None, list_hourly_price=None, currency=price.currency,
        capacity_rps=None, target_utilisation=None, cost_per_1k_requests=per_request * 1000,
        cost_per_1k_basis="effective" if bill is not None else "at capacity", cost_per_1k_at_capacity=per_request * 1000,
        cost_per_1m_output_tokens=per_request / mean_output_tokens * 1e6 if mean_output_tokens else None,
        cost_per_1m_total_tokens=per_request / tokens * 1e6 if tokens else None,
        mean_input_tokens=mean_input_tokens, mean_output_tokens=mean_output_tokens,
        peak_rps=hours.peak_rps if hours else None, monthly_requests=bill.monthly_requests if bill else None,
        monthly_cost=bill.monthly_cost if bill else None, monthly_cost_basis=bill.basis if bill else None,
        input_per_1m=price.input_per_1m, output_per_1m=price.output_per_1m,
        effective_input_per_1m=api_cost_per_request(1e6, 0, price.input_per_1m, price.output_per_1m,
                                                    price.cached_input_per_1m, cached_share),
        price_source=price.source, price_as_of=price.as_of.isoformat(),
        capacity_basis=f"token counts: {token_source}" if token_source else None, evidence=token_source,
    )
