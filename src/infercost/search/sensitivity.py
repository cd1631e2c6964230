"""How the winner's cost moves if the inputs were different: demand half or one and a half times the plan, the SLO
tightened or relaxed. Measured winners are re-judged from their stored probes (no engine is started); projected
ones are re-simulated with the same probe budget as the study."""

from __future__ import annotations

import asyncio
from pathlib import Path

from infercost.capacity.result import CapacityResult
from infercost.cost.catalog import Catalog
from infercost.cost.formulas import cost_per_1k_requests
from infercost.cost.offers import offers_for
from infercost.cost.pricing import CostRow, FleetPolicy, cost_rows
from infercost.loadgen.records import RequestRecord
from infercost.metrics import summarize
from infercost.search.evaluate import Evaluator, TrialOutcome
from infercost.search.recommendation import DemandCase, SloCase
from infercost.spec.vocabulary import PRICING_MODELS, SLO_METRICS
from infercost.spec.workload import SLO, Demand, Workload
from infercost.store import load_run

SPOT_NOTE = ("Spot capacity can be reclaimed at short notice (about 2 minutes on AWS, 30 seconds on GCP and Azure): "
             "serve on spot only with spare replicas or an on-demand fallback, and expect prices to move.")
DEMAND_FACTORS = (0.5, 1.0, 1.5)
SLO_FACTORS = (("tightened 20%", 0.8), ("relaxed 25%", 1.25))


def placements(o: TrialOutcome, workload: Workload, catalog: Catalog, demand: Demand | None = None) -> list[CostRow]:
    """The outcome's configuration on every offer and pricing model that can host it, cheapest first."""
    offers = offers_for(catalog, o.config.hardware, o.config.devices)
    return sorted(cost_rows(o.throughput(workload), offers, demand or workload.demand, FleetPolicy(), PRICING_MODELS),
                  key=lambda r: r.cost_per_1k_requests)


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


def demand_cases(best: TrialOutcome, workload: Workload, catalog: Catalog) -> list[DemandCase]:
    c = best.cost
    demand = workload.demand.model_dump()
    out = []
    for factor in DEMAND_FACTORS:
        scaled = Demand.model_validate({**demand, "peak_rps": demand["peak_rps"] * factor if demand["peak_rps"] else None,
                                        "requests_per_day": demand["requests_per_day"] * factor
                                        if demand["requests_per_day"] else None})
        row = next((r for r in placements(best, workload, catalog, scaled)
                    if (r.provider, r.region, r.sku, r.pricing) == (c.provider, c.region, c.sku, c.pricing)), None)
        out.append(DemandCase(demand_factor=factor, monthly_cost=row.monthly_cost if row else None,
                              replicas_at_peak=row.replicas_at_peak if row else None))
    return out


def slo_cases(best: TrialOutcome, workload: Workload, evaluator: Evaluator | None) -> list[SloCase]:
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
        # the main figures' formula and target utilisation, so a changed SLO is the only difference
        cost = cost_per_1k_requests(c.hourly_price, capacity, c.target_utilisation or 1.0) \
            if capacity and c.hourly_price else None
        out.append(SloCase(slo=label, factor=factor, capacity_rps=capacity, cost_per_1k_requests=cost,
                           method="measured probes re-judged" if best.kind == "measured" else "re-simulated"))
    return out
