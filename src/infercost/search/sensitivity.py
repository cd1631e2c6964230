"""How the winner's cost moves if the inputs were different: demand half or one and a half times the plan, the SLO
tightened or relaxed. Measured winners are re-judged from their stored probes (no engine is started); projected
ones are re-simulated with the same probe budget as the study."""

from __future__ import annotations

import asyncio
from pathlib import Path

from infercost.capacity.result import CapacityResult
from infercost.cost.catalog import Catalog
from infercost.cost.fleet import FleetPolicy
from infercost.cost.offers import offers_for
from infercost.cost.pricing import CostRow, cost_rows
from infercost.loadgen.records import RequestRecord
from infercost.metrics import summarize
from infercost.search.evaluate import Evaluator, TrialOutcome
from infercost.search.recommendation import DemandCase, SloCase
from infercost.spec.vocabulary import PRICING_MODELS, SLO_METRICS
from infercost.spec.workload import SLO, Demand, Workload
from infercost.store import load_run

SPOT_NOTE = ("Spot capacity can be reclaimed at short notice (about 2 minutes on AWS, 30 seconds on GCP and Azure): "
             "spot bills keep the fleet's on-demand floor and price the share of spot hours lost to interruption "
             "at the on-demand rate; spot prices move, so refresh them before relying on a spot answer.")
DEMAND_FACTORS = (0.5, 1.0, 1.5)
SLO_FACTORS = (("tightened 20%", 0.8), ("relaxed 25%", 1.25))


def placements(o: TrialOutcome, workload: Workload, catalog: Catalog, policy: FleetPolicy,
               demand: Demand | None = None) -> list[CostRow]:
    """The outcome's configuration on every offer and pricing model that can host it, cheapest first (on the
    bill at the demand where there is one), priced with the study's fleet policy like the trial itself."""
    if o.config.hardware == "here":  # this machine: the offers like it, as the trial was priced
        offers = offers_for(catalog, "here", measured_on=_measured_on(o))
    else:
        offers = offers_for(catalog, o.config.hardware, o.config.devices)
    return sorted(cost_rows(o.throughput(workload), offers, demand or workload.demand, policy, PRICING_MODELS),
                  key=lambda r: (r.monthly_cost if r.monthly_cost is not None else r.cost_per_1k_requests,
                                 r.cost_per_1k_requests))


def _measured_on(o: TrialOutcome) -> dict | None:
    """The hardware a measured trial recorded (its capacity result's provenance), so it is priced on offers like the
    machine it ran on, not the one reading the report."""
    path = Path(o.evidence) / "capacity.json" if o.evidence else None
    if path is None or not path.is_file():
        return None
    return CapacityResult.model_validate_json(path.read_text()).provenance.get("hardware")


def scaled_slo(slo: SLO, factor: float) -> SLO:
    data = slo.model_dump()
    for metric in SLO_METRICS:
        if data.get(metric):
            data[metric] = {k: v * factor for k, v in data[metric].items()}
    return SLO.model_validate(data)


def measured_capacity_under(o: TrialOutcome, slo: SLO) -> float | None:
    """The highest stored probe load whose request records pass `slo`."""
    if not o.evidence or not (Path(o.evidence) / "capacity.json").is_file():
        return None
    result = CapacityResult.model_validate_json((Path(o.evidence) / "capacity.json").read_text())
    passing = []
    fields = set(RequestRecord.__dataclass_fields__)
    for p in result.probes:
        run_dir = Path(p.run_dir) if p.run_dir and Path(p.run_dir).is_dir() else \
            Path(o.evidence) / "probes" / Path(p.run_dir or "").name
        if not (run_dir / "requests.parquet").is_file() or p.stopped_early:
            continue
        records = [RequestRecord(**{k: (list(v) if k in ("token_times_s", "chunk_tokens") else v)
                                    for k, v in row.items() if k in fields})
                   for row in load_run(run_dir).requests.to_dict("records")]
        if summarize(records, slo).slo_met:
            passing.append(p.load)
    return max(passing) if passing else None


def demand_cases(best: TrialOutcome, workload: Workload, catalog: Catalog, policy: FleetPolicy) -> list[DemandCase]:
    c = best.cost
    demand = workload.demand.model_dump()
    out = []
    for factor in DEMAND_FACTORS:
        scaled = Demand.model_validate({**demand, "peak_rps": demand["peak_rps"] * factor if demand["peak_rps"] else None,
                                        "requests_per_day": demand["requests_per_day"] * factor
                                        if demand["requests_per_day"] else None})
        row = next((r for r in placements(best, workload, catalog, policy, scaled)
                    if (r.provider, r.region, r.sku, r.pricing) == (c.provider, c.region, c.sku, c.pricing)), None)
        out.append(DemandCase(demand_factor=factor, monthly_cost=row.monthly_cost if row else None,
                              replicas_at_peak=row.replicas_at_peak if row else None))
    return out


def _offer_of(c: CostRow):
    """The offer a cost row was priced on, rebuilt from the row (its prices and identity are all it needs)."""
    from datetime import date

    from infercost.cost.catalog import Offer

    on_demand = c.list_hourly_price or c.hourly_price
    return Offer(provider=c.provider, region=c.region, region_name=c.region_name, sku=c.sku, accelerator=c.accelerator,
                 accelerator_count=c.accelerator_count, on_demand_hourly=on_demand, currency=c.currency,
                 source=c.price_source, as_of=date.fromisoformat(c.price_as_of),
                 **({f"{c.pricing}_hourly": c.hourly_price} if c.pricing != "on_demand" else {}))


def slo_cases(best: TrialOutcome, workload: Workload, evaluator: Evaluator | None,
              policy: FleetPolicy) -> list[SloCase]:
    c = best.cost
    out = []
    for label, factor in SLO_FACTORS:
        slo = scaled_slo(workload.slo, factor)
        capacity = measured_capacity_under(best, slo) if best.kind == "measured" else None
        if best.kind == "projected" and evaluator is not None:
            projector = evaluator.projector(best.config, evaluator.deployment(best.config))
            capacity = asyncio.run(projector.capacity(workload.model_copy(update={"slo": slo}),
                                                      evaluator.lengths(best.config.model),
                                                      evaluator.projected_options())).capacity_rps
        # the main figures' bill on the same offer, so a changed SLO is the only difference
        cost = None
        if capacity and c.hourly_price:
            tp = c.throughput().model_copy(update={"capacity_rps": capacity, "capacity_low_rps": None,
                                                   "capacity_high_rps": None})
            row = next(iter(cost_rows(tp, [_offer_of(c)], workload.demand, policy, (c.pricing,))), None)
            cost = row.cost_per_1k_requests if row else None
        out.append(SloCase(slo=label, factor=factor, capacity_rps=capacity, cost_per_1k_requests=cost,
                           method="measured probes re-judged" if best.kind == "measured" else "re-simulated"))
    return out
