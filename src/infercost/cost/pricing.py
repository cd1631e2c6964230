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
from infercost.cost.formulas import (
    HOURS_PER_MONTH,
    api_cost_per_request,
    autoscaled_replicas,
    cost_per_1k_requests,
    cost_per_1m_tokens,
    hourly_rps,
    monthly_cost,
    replicas_for_peak,
)
from infercost.errors import InputError
from infercost.metrics.intervals import Confidence
from infercost.spec.common import Spec
from infercost.spec.vocabulary import PRICING_MODELS
from infercost.spec.workload import Demand


class FleetPolicy(Spec):
    target_utilisation: float = Field(default=1.0, gt=0, le=1, description="share of SLO capacity to plan for")
    min_replicas: int = Field(default=1, ge=0)
    scale_step: int = Field(default=1, gt=0, description="replicas added or removed at a time")
    autoscale: bool = Field(default=True, description="follow the demand profile hour by hour where there is one")


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
    cost_per_1k_requests: float
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
    confidence: Confidence | None = None


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
        engine=manifest.get("engine", {}), measured_at=manifest.get("ended_at"),
    )


def demand_figures(demand: Demand, capacity: float, policy: FleetPolicy
                    ) -> tuple[int | None, float | None, float | None, str | None]:
    """(replicas at peak, replica-hours per day, monthly requests, how the month was sized)."""
    u = policy.target_utilisation
    if demand.hourly_profile and (demand.requests_per_day or demand.peak_rps):
        rates = hourly_rps(demand.hourly_profile, demand.requests_per_day, demand.peak_rps)
        peak = max(rates)
        replicas = replicas_for_peak(peak, capacity, u, policy.min_replicas)
        requests = sum(rates) * 3600 * HOURS_PER_MONTH / 24
        if policy.autoscale:
            hours = float(sum(autoscaled_replicas(rates, capacity, u, policy.min_replicas, policy.scale_step)))
            return replicas, hours, requests, (f"autoscaled on the 24-hour profile (min {policy.min_replicas}, "
                                               f"step {policy.scale_step}, utilisation {u:g})")
        return replicas, replicas * 24.0, requests, f"peak-provisioned: {replicas} replicas around the clock"
    if demand.peak_rps:
        replicas = replicas_for_peak(demand.peak_rps, capacity, u, policy.min_replicas)
        requests = demand.requests_per_day * HOURS_PER_MONTH / 24 if demand.requests_per_day else None
        return replicas, replicas * 24.0, requests, f"peak-provisioned: {replicas} replicas x 730 h"
    if demand.requests_per_day:
        mean_rps = demand.requests_per_day / 86400
        replicas = replicas_for_peak(mean_rps, capacity, u, policy.min_replicas)
        return (replicas, replicas * 24.0, demand.requests_per_day * HOURS_PER_MONTH / 24,
                "sized on the mean rate (no peak_rps or profile given): an underestimate if traffic is bursty")
    return None, None, None, None


def cost_rows(throughput: Throughput, offers: list[Offer], demand: Demand | None = None,
              policy: FleetPolicy | None = None, pricing: tuple[str, ...] = PRICING_MODELS) -> list[CostRow]:
    """Every offer x pricing model that has a price. The capacity is per replica: the offer must be the hardware
    the throughput was measured (or projected) on, which the caller chooses."""
    policy = policy or FleetPolicy()
    demand = demand or Demand()
    cap, u = throughput.capacity_rps, policy.target_utilisation
    out_tps = cap * throughput.mean_output_tokens if throughput.mean_output_tokens else None
    total_tps = (cap * (throughput.mean_output_tokens + throughput.mean_input_tokens)
                 if throughput.mean_output_tokens is not None and throughput.mean_input_tokens is not None else None)
    replicas, hours, requests, basis = demand_figures(demand, cap, policy)
    ends = {}  # capacity end -> (hours per day at that capacity); the cost interval comes from the same formulas
    for end in (throughput.capacity_low_rps, throughput.capacity_high_rps):
        if end is not None and end > 0:
            ends[end] = demand_figures(demand, end, policy)[1]
    low_cap, high_cap = throughput.capacity_low_rps, throughput.capacity_high_rps
    peak = demand.peak_rps
    if demand.hourly_profile and (demand.requests_per_day or demand.peak_rps):
        peak = max(hourly_rps(demand.hourly_profile, demand.requests_per_day, demand.peak_rps))
    rows = []
    for offer in offers:
        for model in pricing:
            hourly = offer.hourly(model)
            if hourly is None:
                continue
            rows.append(CostRow(
                kind=throughput.kind, workload=throughput.workload, deployment=throughput.deployment,
                tags=throughput.tags, provider=offer.provider, region=offer.region, region_name=offer.region_name,
                sku=offer.sku, accelerator=offer.accelerator, accelerator_count=offer.accelerator_count,
                pricing=model, hourly_price=hourly, list_hourly_price=offer.on_demand_hourly,
                currency=offer.currency, capacity_rps=cap, target_utilisation=u,
                cost_per_1k_requests=cost_per_1k_requests(hourly, cap, u),
                cost_per_1m_output_tokens=cost_per_1m_tokens(hourly, out_tps, u) if out_tps else None,
                cost_per_1m_total_tokens=cost_per_1m_tokens(hourly, total_tps, u) if total_tps else None,
                mean_input_tokens=throughput.mean_input_tokens, mean_output_tokens=throughput.mean_output_tokens,
                peak_rps=peak, replicas_at_peak=replicas, replica_hours_per_day=hours, monthly_requests=requests,
                monthly_cost=monthly_cost(hourly, hours) if hours is not None else None, monthly_cost_basis=basis,
                price_source=offer.source, price_as_of=offer.as_of.isoformat(), capacity_basis=throughput.basis,
                evidence=throughput.evidence,
                cost_per_1k_requests_low=cost_per_1k_requests(hourly, high_cap, u) if high_cap else None,
                cost_per_1k_requests_high=cost_per_1k_requests(hourly, low_cap, u) if low_cap else None,
                monthly_cost_low=monthly_cost(hourly, ends[high_cap]) if ends.get(high_cap) is not None else None,
                monthly_cost_high=monthly_cost(hourly, ends[low_cap]) if ends.get(low_cap) is not None else None,
                confidence=throughput.confidence,
            ))
    return rows


def api_cost_row(price: TokenPrice, workload: str, tags: dict[str, str], mean_input_tokens: float,
                 mean_output_tokens: float, demand: Demand | None = None, cached_share: float = 0.0,
                 token_source: str | None = None) -> CostRow:
    """Buying instead of building: the same workload's measured token counts at a hosted model's list prices. No
    capacity or replicas: the vendor's rate limits are not modelled."""
    demand = demand or Demand()
    per_request = api_cost_per_request(mean_input_tokens, mean_output_tokens, price.input_per_1m, price.output_per_1m,
                                       price.cached_input_per_1m, cached_share)
    requests = None
    if demand.requests_per_day:
        requests = demand.requests_per_day * HOURS_PER_MONTH / 24
    elif demand.hourly_profile and demand.peak_rps:
        requests = sum(hourly_rps(demand.hourly_profile, None, demand.peak_rps)) * 3600 * HOURS_PER_MONTH / 24
    tokens = mean_input_tokens + mean_output_tokens
    return CostRow(
        kind="api", workload=workload, deployment=f"{price.provider}/{price.model}", tags=tags,
        provider=price.provider, region="global", region_name=None, sku=price.model, accelerator="none",
        accelerator_count=0, pricing="on_demand", hourly_price=None, list_hourly_price=None, currency=price.currency,
        capacity_rps=None, target_utilisation=None, cost_per_1k_requests=per_request * 1000,
        cost_per_1m_output_tokens=per_request / mean_output_tokens * 1e6 if mean_output_tokens else None,
        cost_per_1m_total_tokens=per_request / tokens * 1e6 if tokens else None,
        mean_input_tokens=mean_input_tokens, mean_output_tokens=mean_output_tokens, peak_rps=demand.peak_rps,
        monthly_requests=requests, monthly_cost=per_request * requests if requests is not None else None,
        monthly_cost_basis="token list prices x monthly requests" if requests is not None else None,
        input_per_1m=price.input_per_1m, output_per_1m=price.output_per_1m,
        effective_input_per_1m=api_cost_per_request(1e6, 0, price.input_per_1m, price.output_per_1m,
                                                    price.cached_input_per_1m, cached_share),
        price_source=price.source, price_as_of=price.as_of.isoformat(),
        capacity_basis=f"token counts: {token_source}" if token_source else None, evidence=token_source,
    )
