"""The recommendation report's content, as one JSON-able dict: every number the markdown and HTML show comes from
here, so report.json is the record a reviewer can check them against."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna

from infercost.capacity.result import CapacityResult
from infercost.cost.catalog import PRICING_MODELS, Catalog
from infercost.cost.finops import budget_status, showback, value_figures
from infercost.cost.formulas import cost_per_1k_requests
from infercost.cost.placement import accelerator_offers, matching_offers
from infercost.cost.pricing import FleetPolicy, Throughput, api_cost_row, cost_rows
from infercost.metrics import summarize
from infercost.metrics.units import METRICS
from infercost.redact import redact_text, redacted_command
from infercost.search.evaluate import TrialOutcome
from infercost.search.results import summary as study_summary
from infercost.search.study import outcomes, pareto_front
from infercost.spec.workload import SLO, Demand, Workload
from infercost.store import load_run

SPOT_NOTE = ("Spot capacity can be reclaimed at short notice (about 2 minutes on AWS, 30 seconds on GCP and Azure): "
             "serve on spot only with spare replicas or an on-demand fallback, and expect prices to move.")


def _row_dict(row) -> dict[str, Any]:
    return json.loads(row.model_dump_json())


def _throughput(o: TrialOutcome, workload: Workload) -> Throughput:
    c = o.cost
    return Throughput(kind=o.kind or "projected", capacity_rps=o.capacity_rps, mean_input_tokens=c.mean_input_tokens,
                      mean_output_tokens=c.mean_output_tokens, workload=workload.name, deployment=o.config.label(),
                      basis=c.capacity_basis or "", tags=workload.tags.as_dict())


def _placements(o: TrialOutcome, workload: Workload, catalog: Catalog, demand: Demand | None = None) -> list:
    tp = _throughput(o, workload)
    if o.config.hardware == "here":
        from infercost.provenance import hardware

        offers, _ = matching_offers(catalog, hardware(), {"device": "cpu"}, None, 1)
    else:
        offers = accelerator_offers(catalog, o.config.hardware, o.config.devices)
    return sorted(cost_rows(tp, offers, demand or workload.demand, FleetPolicy(), PRICING_MODELS),
                  key=lambda r: r.cost_per_1k_requests)


def _relaxed(slo: SLO, factor: float) -> SLO:
    data = slo.model_dump()
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        if data.get(metric):
            data[metric] = {k: v * factor for k, v in data[metric].items()}
    return SLO.model_validate(data)


def _capacity_under(o: TrialOutcome, slo: SLO) -> float | None:
    """Capacity under another SLO from the measured probes themselves (their records re-judged): the highest probe
    load that passes. Projected trials are re-simulated by the caller instead."""
    if not o.evidence or not (Path(o.evidence) / "capacity.json").is_file():
        return None
    result = CapacityResult.model_validate_json((Path(o.evidence) / "capacity.json").read_text())
    passing = []
    for p in result.probes:
        run_dir = Path(p.run_dir) if p.run_dir and Path(p.run_dir).is_dir() else \
            Path(o.evidence) / "probes" / Path(p.run_dir or "").name
        if not (run_dir / "requests.parquet").is_file() or p.stopped_early:
            continue
        from infercost.loadgen.records import RequestRecord

        run = load_run(run_dir)
        fields = set(RequestRecord.__dataclass_fields__)
        records = [RequestRecord(**{k: (list(v) if k in ("token_times_s", "chunk_tokens") else v)
                                    for k, v in row.items() if k in fields})
                   for row in run.requests.to_dict("records")]
        if summarize(records, slo).slo_met:
            passing.append(p.load)
    return max(passing) if passing else None


def build_report(study: optuna.Study, spec: Any, workload: Workload, catalog: Catalog, evaluator: Any = None,
                 command: str | None = None) -> dict[str, Any]:
    found = study_summary(study)
    rows = outcomes(study)
    feasible = sorted([(t, o) for t, o in rows if o.status == "feasible"], key=lambda x: x[1].objective)
    report: dict[str, Any] = {
        "title": f"Recommendation: {workload.name}", "study": study.study_name, "mode": spec.mode,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "workload": {"name": workload.name, "description": workload.description, "tags": workload.tags.as_dict(),
                     "slo": workload.slo.targets(), "max_error_rate": workload.slo.max_error_rate,
                     "demand": workload.demand.model_dump(),
                     "quality_target": workload.quality.target.model_dump(mode="json")
                     if workload.quality and workload.quality.target else None},
        "trials": {"total": found["trials"], "feasible": found["feasible"]},
        "recommendation": None, "alternatives": [], "rejected": found["rejected"], "pareto": [],
        "placements": [], "build_vs_buy": [], "sensitivity": {}, "finops": {}, "evidence": {},
        "all_trials": [],
    }
    for t, o in rows:
        report["all_trials"].append({
            "trial": t.number, "config": o.config.label(), "status": o.status, "kind": o.kind,
            "capacity_rps": o.capacity_rps, "cost_per_1k": o.objective if o.status == "feasible" else None,
            "ttft_p95_ms": o.ttft_p95_ms, "quality": o.quality_score, "reason": o.reason,
            "slo_observed": o.slo_observed})
    if not feasible:
        return report
    t0, best = feasible[0]
    c = best.cost
    base = found.get("baseline")
    savings = found["best"][0].get("savings") if found["best"] else None
    margins = {}
    for metric, bounds in workload.slo.targets().items():
        for stat, bound in bounds.items():
            observed = best.slo_observed.get(f"{metric}.{stat}")
            if observed is not None:
                margins[f"{metric} {stat}"] = {"bound": bound, "observed": observed, "margin": 1 - observed / bound}
    tightest = min(margins.items(), key=lambda kv: kv[1]["margin"])[0] if margins else None
    excluded: dict[str, int] = {}
    for _, o in rows:
        if o.status != "feasible" and o.objective is not None and o.objective < best.objective:
            for k, v in o.constraints.items():
                if v > 0:
                    excluded[k] = excluded.get(k, 0) + 1
    binding = (f"{tightest} sets the capacity (smallest SLO margin)" if tightest else "the SLO sets the capacity")
    if excluded:
        binding += "; cheaper configurations were excluded by " + ", ".join(
            f"{k} ({n})" for k, n in sorted(excluded.items(), key=lambda kv: -kv[1]))
    report["recommendation"] = {
        "trial": t0.number, "config": best.config.model_dump(), "label": best.config.label(), "kind": best.kind,
        "provider": c.provider, "region": c.region, "sku": c.sku, "pricing": c.pricing,
        "cost_per_1k_requests": c.cost_per_1k_requests, "cost_per_1m_output_tokens": c.cost_per_1m_output_tokens,
        "cost_per_1m_total_tokens": c.cost_per_1m_total_tokens, "monthly_cost": c.monthly_cost,
        "monthly_cost_basis": c.monthly_cost_basis, "replicas_at_peak": c.replicas_at_peak,
        "capacity_rps": best.capacity_rps, "savings_vs_baseline": savings,
        "baseline": {"label": TrialOutcome.model_validate(base).config.label(),
                     "cost_per_1k_requests": base["objective"], "status": base["status"],
                     "reason": base["reason"]} if base else None,
        "slo_margins": margins, "quality_score": best.quality_score, "quality_ci95": best.quality_ci95,
        "quality_met": best.quality_met, "quality_source": best.quality_source, "binding": binding,
        "expected_error": best.expected_error, "price_source": c.price_source, "price_as_of": c.price_as_of,
    }
    for t, o in feasible[1:6]:
        gap = o.objective / best.objective - 1
        report["alternatives"].append({"trial": t.number, "label": o.config.label(), "kind": o.kind,
                                       "cost_per_1k_requests": o.objective, "ttft_p95_ms": o.ttft_p95_ms,
                                       "quality": o.quality_score,
                                       "why_not": f"{gap:.0%} more per 1k requests than the recommendation"})
    report["pareto"] = [{"trial": t.number, "label": o.config.label(), "cost_per_1k_requests": o.objective,
                         "ttft_p95_ms": o.ttft_p95_ms, "quality": o.quality_score}
                        for t, o in pareto_front(feasible)]
    placements = _placements(best, workload, catalog)
    report["placements"] = [_row_dict(r) for r in placements[:24]]
    tokens_in, tokens_out = c.mean_input_tokens, c.mean_output_tokens
    if tokens_in is not None and tokens_out is not None:
        report["build_vs_buy"] = sorted(
            [_row_dict(api_cost_row(p, workload.name, workload.tags.as_dict(), tokens_in, tokens_out,
                                    workload.demand, token_source="the recommendation's token counts"))
             for p in catalog.token_prices], key=lambda r: r["cost_per_1k_requests"])
    # sensitivity: demand +-50%, SLO one step looser / tighter, spot risk
    demand = workload.demand.model_dump()
    sens = {"demand": [], "slo": [], "spot_note": SPOT_NOTE}
    for factor in (0.5, 1.0, 1.5):
        scaled = Demand.model_validate({**demand, "peak_rps": demand["peak_rps"] * factor if demand["peak_rps"] else None,
                                        "requests_per_day": demand["requests_per_day"] * factor
                                        if demand["requests_per_day"] else None})
        row = next((r for r in _placements(best, workload, catalog, scaled)
                    if (r.provider, r.region, r.sku, r.pricing) == (c.provider, c.region, c.sku, c.pricing)), None)
        sens["demand"].append({"demand_factor": factor, "monthly_cost": row.monthly_cost if row else None,
                               "replicas_at_peak": row.replicas_at_peak if row else None})
    for label, factor in (("tightened 20%", 0.8), ("relaxed 25%", 1.25)):
        slo = _relaxed(workload.slo, factor)
        capacity = _capacity_under(best, slo) if best.kind == "measured" else None
        if best.kind == "projected" and evaluator is not None:
            import asyncio

            from infercost.spec.loader import deployment_adapter, validate

            dep = validate(deployment_adapter(), best.config.deployment(spec.fixed), source="report")
            projector = evaluator.projector(best.config, dep)
            w2 = workload.model_copy(update={"slo": slo})
            capacity = asyncio.run(projector.capacity(w2, evaluator.lengths(best.config.model), evaluator.projected_options())
                                   ).capacity_rps
        # the main figures' formula and target utilisation, so a changed SLO is the only difference
        cost = cost_per_1k_requests(c.hourly_price, capacity, c.target_utilisation or 1.0) \
            if capacity and c.hourly_price else None
        sens["slo"].append({"slo": label, "factor": factor, "capacity_rps": capacity, "cost_per_1k_requests": cost,
                            "method": "measured probes re-judged" if best.kind == "measured" else "re-simulated"})
    report["sensitivity"] = sens
    fin: dict[str, Any] = {"tags": workload.tags.as_dict()}
    fin["showback"] = json.loads(showback([c], list(workload.tags.as_dict()) or ["team"], c.pricing)
                                 .to_json(orient="records"))
    if workload.budget is not None and c.monthly_cost is not None:
        fin["budget"] = budget_status(c.monthly_cost, workload.budget).model_dump()
        fin["budget"]["thresholds"] = {"warn_at": workload.budget.warn_at, "breach_at": workload.budget.breach_at}
    if workload.value is not None:
        fin["value"] = {**value_figures(c, workload.value).model_dump(), "per_request": workload.value.per_request,
                        "basis": workload.value.basis}
    report["finops"] = fin
    report["quality_examples"] = _quality_examples(best, spec, workload, evaluator)
    report["focus_rows"] = [c]
    report["evidence"] = _evidence(best, spec, command)
    return report


def _quality_examples(best: TrialOutcome, spec: Any, workload: Workload, evaluator: Any) -> list[dict[str, Any]]:
    """The recommendation's lowest-scoring answers, from the answer cache (no engine is started for the report)."""
    if evaluator is None or workload.quality is None:
        return []
    import asyncio

    from infercost.quality.evaluate import evaluate as evaluate_quality
    from infercost.search.evaluate import QualityNotCached, _no_engine
    from infercost.spec.loader import deployment_adapter, validate

    try:
        dep = validate(deployment_adapter(), best.config.deployment(spec.fixed), source="report")
        result = asyncio.run(evaluate_quality(workload, dep, cache_dir=evaluator.quality_dir,
                                              engine_factory=_no_engine))
    except (QualityNotCached, Exception):
        return []
    worst = sorted(result.scores, key=lambda s: s.score)[:3]
    return [{"id": s.id, "prompt": s.prompt, "answer": s.answer, "reference": s.reference, "score": s.score}
            for s in worst]


def _evidence(best: TrialOutcome, spec: Any, command: str | None) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "kind": best.kind, "metric_definitions": {m.name: f"{m.description} ({m.unit})" for m in METRICS.values()},
        "reproduce": redact_text(command) if command else redacted_command(sys.argv), "probes": best.probes,
        "requests_per_probe": best.requests_per_probe, "quality_source": best.quality_source,
        "quality_ci95": best.quality_ci95, "expected_error": best.expected_error,
        "price": {"source": best.cost.price_source, "as_of": best.cost.price_as_of},
    }
    if best.evidence and (Path(best.evidence) / "manifest.json").is_file():
        m = json.loads((Path(best.evidence) / "manifest.json").read_text())
        ev.update(directory=best.evidence, versions=m.get("versions"), hardware=m.get("hardware"),
                  measured_at=m.get("ended_at"), engine={k: v for k, v in (m.get("engine") or {}).items()
                                                         if k.endswith("version") or k in ("engine", "dtype")})
    else:
        ev.update(projection="simulated with the step-time model; see the efficiency source",
                  efficiency=best.cost.capacity_basis)
    return ev
