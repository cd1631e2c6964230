"""A study's recommendation: the cheapest feasible configuration, the runners-up and why each lost, the Pareto front,
placements, build versus buy, sensitivity and FinOps figures, with the evidence behind them. Reads the stored
trials and the files they point at; starts no engine."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import optuna

from infercost.cost.catalog import Catalog
from infercost.cost.finops import budget_status, showback, value_figures
from infercost.cost.pricing import api_cost_row
from infercost.metrics.units import METRICS
from infercost.quality.evaluate import evaluate as evaluate_quality
from infercost.redact import redact_text, redacted_command
from infercost.search.evaluate import Evaluator, QualityNotCached, TrialOutcome, no_engine, rank
from infercost.search.build_or_buy import build_or_buy
from infercost.search.recommendation import (Alternative, BaselineFacts, Comparison, DemandCase, Evidence, FinOps,
                                             Lost, ParetoPoint, QualityExample, Recommendation, Sensitivity, SloMargin,
                                             TrialCounts, TrialRow, Unverified, Winner, WorkloadFacts)
from infercost.search.results import summary as study_summary
from infercost.search.sensitivity import DEMAND_FACTORS, SPOT_NOTE, demand_cases, placements, slo_cases
from infercost.search.spec import StudySpec
from infercost.search.study import outcomes, pareto_front
from infercost.spec.workload import Workload

ALTERNATIVES = 5


def recommend(study: optuna.Study, spec: StudySpec, workload: Workload, catalog: Catalog,
              evaluator: Evaluator | None = None, command: str | None = None) -> Recommendation:
    """`evaluator` (the study's) lets a projected winner be re-simulated under other SLOs and the winner's answers
    be read from the quality cache; without it those parts are left out."""
    found = study_summary(study)
    rows = outcomes(study)
    feasible = sorted([(t, o) for t, o in rows if o.status == "feasible"], key=lambda x: rank(x[1]))
    objective = spec.objective_for(workload)
    rec = Recommendation(
        title=f"Recommendation: {workload.name}", study=study.study_name, mode=spec.mode,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), objective=objective,
        no_bill=None if objective == "bill" or spec.objective == "cost_per_1k_at_capacity" else
        "the workload gives no demand (requests_per_day, peak_rps or an hourly profile), so no bill can be computed: "
        "figures are at capacity, every replica busy at the target utilisation",
        fleet=spec.fleet.model_dump(mode="json"),
        workload=WorkloadFacts(name=workload.name, description=workload.description, tags=workload.tags.as_dict(),
                               slo=workload.slo.targets(), max_error_rate=workload.slo.max_error_rate,
                               demand=workload.demand.model_dump(),
                               quality_target=workload.quality.target.model_dump(mode="json")
                               if workload.quality and workload.quality.target else None),
        trials=TrialCounts(total=found["trials"], feasible=found["feasible"]),
        rejected=[Lost(**r) for r in found["rejected"]],
        all_trials=[TrialRow(trial=t.number, config=o.config.label(), status=o.status, kind=o.kind,
                             capacity_rps=o.capacity_rps,
                             cost_per_1k=o.cost.cost_per_1k_requests if o.status == "feasible" and o.cost else None,
                             monthly_cost=o.cost.monthly_cost if o.status == "feasible" and o.cost else None,
                             ttft_p95_ms=o.ttft_p95_ms, quality=o.quality_score, reason=o.reason,
                             slo_observed=o.slo_observed, capacity_low_rps=o.capacity_low_rps,
                             capacity_high_rps=o.capacity_high_rps,
                             tier=o.confidence.tier if o.confidence else None) for t, o in rows])
    winner = feasible[0] if feasible else None
    rec.build_or_buy = build_or_buy([(t.number, o) for t, o in rows], workload, catalog,
                                    {a.name for a in spec.space.apis},
                                    (winner[0].number, winner[1]) if winner else None, spec.fleet)
    rec.quality_unverified = _unverified(rows, feasible[0][1] if feasible else None)
    if not feasible:
        return rec
    t0, best = feasible[0]
    c = best.cost
    rec.winner = _winner(t0.number, best, rows, workload, found, objective)
    rec.decision = spec.constraints.decision
    rec.alternatives = [Alternative(trial=t.number, label=o.config.label(), kind=o.kind,
                                    cost_per_1k_requests=o.cost.cost_per_1k_requests,
                                    cost_per_1k_at_capacity=o.cost.cost_per_1k_at_capacity, ttft_p95_ms=o.ttft_p95_ms,
                                    monthly_cost=o.cost.monthly_cost, quality=o.quality_score,
                                    why_not=_why_not(best, o, objective))
                        for t, o in feasible[1:1 + ALTERNATIVES]]
    w = rec.winner
    if len(feasible) > 1:
        w.versus_runner_up = compare(best, feasible[1][1], "the runner-up")
    if found.get("baseline") and found["baseline"].get("objective") is not None:
        w.versus_baseline = compare(best, TrialOutcome.model_validate(found["baseline"]), "the baseline")
    _settle(w, best, spec)
    _withhold_unchecked_savings(w, best, workload, evaluator)
    rec.verdict = _verdict(w, feasible)
    rec.pareto = [ParetoPoint(trial=t.number, label=o.config.label(), cost_per_1k_requests=o.cost.cost_per_1k_requests,
                              ttft_p95_ms=o.ttft_p95_ms, quality=o.quality_score) for t, o in pareto_front(feasible)]
    rec.placements = placements(best, workload, catalog, spec.fleet)[:24] if best.kind != "api" else []
    if c.mean_input_tokens is not None and c.mean_output_tokens is not None:
        rec.build_vs_buy = sorted(
            [api_cost_row(p, workload.name, workload.tags.as_dict(), c.mean_input_tokens, c.mean_output_tokens,
                          workload.demand, token_source="the recommendation's token counts")
             for p in catalog.token_prices], key=lambda r: r.cost_per_1k_requests)
    if best.kind == "api":  # bought per token: the month scales with volume; the SLO is the vendor's
        rec.sensitivity = Sensitivity(demand=[DemandCase(demand_factor=f, monthly_cost=c.monthly_cost * f
                                                         if c.monthly_cost is not None else None, replicas_at_peak=None)
                                              for f in DEMAND_FACTORS], spot_note=SPOT_NOTE)
    else:
        rec.sensitivity = Sensitivity(demand=demand_cases(best, workload, catalog, spec.fleet),
                                      slo=slo_cases(best, workload, evaluator, spec.fleet), spot_note=SPOT_NOTE)
    rec.finops = _finops(best, workload)
    rec.quality_examples = _quality_examples(best, workload, evaluator)
    rec.focus_rows = [c]
    rec.evidence = _evidence(best, command)
    wrong = rec.contradictions()
    if wrong:  # a report with two answers is a defect, never a result to render
        raise AssertionError("the recommendation contradicts itself: " + "; ".join(wrong))
    return rec


def _winner(trial: int, best: TrialOutcome, rows, workload: Workload, found: dict, objective: str) -> Winner:
    c = best.cost
    base = found.get("baseline")
    margins = {}
    for metric, bounds in workload.slo.targets().items():
        for stat, bound in bounds.items():
            observed = best.slo_observed.get(f"{metric}.{stat}")
            if observed is not None:
                margins[f"{metric} {stat}"] = SloMargin(bound=bound, observed=observed, margin=1 - observed / bound)
    tightest = min(margins.items(), key=lambda kv: kv[1].margin)[0] if margins else None
    excluded: dict[str, int] = {}  # constraints that ruled out configurations cheaper than the winner
    for _, o in rows:
        if o.status != "feasible" and o.objective is not None and o.objective < best.objective:
            for k, v in o.constraints.items():
                if v > 0:
                    excluded[k] = excluded.get(k, 0) + 1
    if best.kind == "api":  # bought: the vendor's limit, not an SLO, caps what it carries
        binding = f"its {best.capacity_basis or 'rate limit'} caps what it carries" + (
            f"; {tightest} has the smallest SLO margin" if tightest else "")
    else:
        binding = f"{tightest} sets the capacity (smallest SLO margin)" if tightest else "the SLO sets the capacity"
    if excluded:
        binding += "; cheaper configurations were excluded by " + ", ".join(
            f"{k} ({n})" for k, n in sorted(excluded.items(), key=lambda kv: -kv[1]))
    return Winner(
        trial=trial, config=best.config.model_dump(), label=best.config.label(), kind=best.kind,
        provider=c.provider, region=c.region, sku=c.sku, pricing=c.pricing, objective=objective,
        cost_per_1k_requests=c.cost_per_1k_requests, cost_per_1k_basis=c.cost_per_1k_basis,
        cost_per_1k_at_capacity=c.cost_per_1k_at_capacity, cost_per_1m_output_tokens=c.cost_per_1m_output_tokens,
        cost_per_1m_total_tokens=c.cost_per_1m_total_tokens, monthly_cost=c.monthly_cost,
        monthly_requests=c.monthly_requests, replicas_by_hour=c.replicas_by_hour, startup_s=c.startup_s,
        startup_basis=c.startup_basis, spot_assumption=c.spot_assumption,
        monthly_cost_basis=c.monthly_cost_basis, replicas_at_peak=c.replicas_at_peak, capacity_rps=best.capacity_rps,
        capacity_basis=best.capacity_basis,
        savings_vs_baseline=found["best"][0].get("savings") if found["best"] else None,
        baseline=_baseline_facts(base) if base else None,
        slo_margins=margins, quality_score=best.quality_score, quality_ci95=best.quality_ci95,
        quality_met=best.quality_met, quality_source=best.quality_source, binding=binding,
        expected_error=best.expected_error, price_source=c.price_source, price_as_of=c.price_as_of,
        confidence=best.confidence, capacity_low_rps=best.capacity_low_rps, capacity_high_rps=best.capacity_high_rps,
        cost_per_1k_requests_low=c.cost_per_1k_requests_low, cost_per_1k_requests_high=c.cost_per_1k_requests_high,
        monthly_cost_low=c.monthly_cost_low, monthly_cost_high=c.monthly_cost_high)


def _baseline_facts(base: dict) -> BaselineFacts:
    o = TrialOutcome.model_validate(base)
    return BaselineFacts(label=o.config.label(), cost_per_1k_requests=o.cost.cost_per_1k_requests if o.cost else None,
                         monthly_cost=o.cost.monthly_cost if o.cost else None, status=o.status, reason=o.reason)


def objective_interval(o: TrialOutcome) -> tuple[float, float] | None:
    """The objective's interval, where the trial recorded one (trials stored before intervals have none)."""
    if o.objective is None or (o.objective_low is None and o.objective_high is None):
        return None
    return (o.objective if o.objective_low is None else o.objective_low,
            o.objective if o.objective_high is None else o.objective_high)


def compare(best: TrialOutcome, other: TrialOutcome, name: str) -> Comparison:
    """Whether `best` is cheaper than `other` even with each at its unfavourable end."""
    wi, oi = objective_interval(best), objective_interval(other)
    gap = f"{1 - best.objective / other.objective:.0%} cheaper than {name}" if other.objective else ""
    base = dict(other=other.config.label(), other_objective=other.objective, other_interval=oi, winner_interval=wi)
    if wi is None or oi is None:
        return Comparison(**base, verdict="no intervals", note=f"{gap} (point estimates: no interval recorded)")
    if other.objective is not None and best.objective >= other.objective:  # equal figures (e.g. both one replica's month): a tie
        note = f"the same {_figure(best)} at the central figures: a tie on this evidence"
        mine, theirs = best.cost.cost_per_1k_at_capacity, other.cost.cost_per_1k_at_capacity if other.cost else None
        if mine is not None and theirs is not None and mine < theirs:
            note += (f"; chosen for its lower cost at capacity (${mine:.5f} against ${theirs:.5f} per 1k), which "
                     "stays cheaper as demand grows")
        return Comparison(**base, verdict="too close to call", note=note)
    if wi[1] <= oi[0]:  # a measured interval excludes its low-cost end ([low, high) capacity): touching is apart
        return Comparison(**base, verdict="beyond the intervals",
                          note=f"{gap}, beyond the intervals: at most {wi[1]:.5g} against at least {oi[0]:.5g}")
    return Comparison(**base, verdict="too close to call",
                      note=f"{gap} at the central figures, but the intervals overlap ({wi[0]:.5g}–{wi[1]:.5g} against "
                           f"{oi[0]:.5g}–{oi[1]:.5g}): too close to call on this evidence")


def _figure(o: TrialOutcome) -> str:
    """The objective as a reader reads it: a month's bill in dollars, or dollars per 1k requests."""
    if o.cost is not None and o.cost.monthly_cost is not None and o.objective == o.cost.monthly_cost:
        return f"${o.objective:,.0f} per month"
    return f"${o.objective:.5f} per 1k requests"


def _why_not(best: TrialOutcome, o: TrialOutcome, objective: str = "bill") -> str:
    unit = "per month at this demand" if objective == "bill" else "per 1k requests at capacity"
    text = f"{o.objective / best.objective - 1:.0%} more {unit} than the recommendation"
    verdict = compare(best, o, "it").verdict
    if verdict == "beyond the intervals":
        return text + ", beyond the intervals"
    if verdict == "too close to call":
        return text + "; the intervals overlap: too close to call"
    return text


def _settle(w: Winner, best: TrialOutcome, spec: StudySpec) -> None:
    """A projected winner whose smallest SLO margin lies inside its error band: name the measurement that settles
    it (capacity measured on that hardware)."""
    if best.kind != "projected" or best.expected_error is None or not w.slo_margins:
        return
    tightest = min(m.margin for m in w.slo_margins.values())
    w.margin_inside_band = tightest < best.expected_error
    if not w.margin_inside_band:
        return
    deployment = best.config.deployment(spec.fixed)
    sets = " ".join(f"--set {k}={v}" for k, v in deployment.items() if isinstance(v, (str, int, float, bool)))
    where = "this machine" if best.config.hardware == "here" else f"a {best.config.devices}x {best.config.hardware} host"
    workload = Path(os.path.normpath(spec.resolve(spec.workload)))
    if workload.is_relative_to(Path.cwd()):
        workload = workload.relative_to(Path.cwd())
    w.settle_with = f"infercost capacity {workload} {sets} --repeats 3"
    w.settle_on = where


def _withhold_unchecked_savings(w: Winner, best: TrialOutcome, workload: Workload,
                                evaluator: Evaluator | None) -> None:
    """A saving over a quality bar nothing checked is not a saving: the figures stay, the claim goes."""
    if workload.quality is None or workload.quality.target is None or best.quality_met is True:
        return
    why = best.quality_source or "the study does not apply the quality target (constraints.quality: false)"
    w.savings_withheld = f"its quality was not checked against the workload's target: {why}"
    w.quality_settle_with = best.quality_settle_with
    if w.quality_settle_with is None and evaluator is not None and best.kind != "api":
        w.quality_settle_with = evaluator.settle_quality_with(best.config, evaluator.deployment(best.config))
    w.savings_vs_baseline = None
    if w.versus_baseline is not None and w.versus_baseline.other_objective:
        change = 1 - best.objective / w.versus_baseline.other_objective
        w.versus_baseline.note = (f"costs {change:.0%} less than the baseline at the central figures; not claimed as "
                                  f"a saving: {w.savings_withheld}")


def _unverified(rows, best: TrialOutcome | None) -> list[Unverified]:
    """Configurations cheaper than the recommendation (any, when there is none) that only an unchecked quality bar
    ruled out, cheapest first, with the measurement that would settle each."""
    latest = {o.config.key(): (t, o) for t, o in rows}  # a re-judged trial supersedes the one before
    out = []
    for t, o in sorted(latest.values(), key=lambda x: x[1].objective if x[1].objective is not None else math.inf):
        if not Evaluator.quality_unverified(o):
            continue
        if best is not None and o.objective is not None and o.objective >= best.objective:
            break
        out.append(Unverified(trial=t.number, label=o.config.label(),
                              cost_per_1k_requests=o.cost.cost_per_1k_requests, quality=o.quality_source,
                              settle_with=o.quality_settle_with))
    return out[:8]


def _verdict(w: Winner, feasible: list) -> str | None:
    parts = []
    if len(feasible) == 1:
        parts.append("The only configuration that met every constraint.")
    elif w.versus_runner_up is not None and w.versus_runner_up.verdict == "beyond the intervals":
        parts.append("Cheaper than the runner-up beyond both intervals.")
    elif w.versus_runner_up is not None and w.versus_runner_up.verdict == "too close to call":
        parts.append(f"Too close to call: the winner and the runner-up ({w.versus_runner_up.other}) have overlapping "
                     "cost intervals; this evidence does not separate them.")
    if w.baseline is not None and w.baseline.label == w.label:
        parts.append("The winner is today's plan (the baseline): keep it.")
    elif w.savings_withheld:
        parts.append(f"No saving against the baseline is claimed: {w.savings_withheld}.")
    elif w.versus_baseline is not None and w.versus_baseline.verdict != "no intervals":
        parts.append("Against the baseline: " + ("cheaper beyond the intervals." if w.versus_baseline.verdict ==
                                                 "beyond the intervals" else "the intervals overlap."))
    if w.margin_inside_band:
        parts.append("Its SLO margin lies inside its projection's error band: measure it on "
                     f"{w.settle_on} before relying on it.")
    return " ".join(parts) or None


def _finops(best: TrialOutcome, workload: Workload) -> FinOps:
    c = best.cost
    tags = workload.tags.as_dict()
    fin = FinOps(tags=tags, showback=json.loads(showback([c], list(tags) or ["team"], c.pricing)
                                                .to_json(orient="records")))
    if workload.budget is not None and c.monthly_cost is not None:
        fin.budget = {**budget_status(c.monthly_cost, workload.budget).model_dump(),
                      "thresholds": {"warn_at": workload.budget.warn_at, "breach_at": workload.budget.breach_at}}
    if workload.value is not None:
        fin.value = {**value_figures(c, workload.value).model_dump(), "per_request": workload.value.per_request,
                     "basis": workload.value.basis}
    return fin


def _quality_examples(best: TrialOutcome, workload: Workload, evaluator: Evaluator | None) -> list[QualityExample]:
    """The winner's lowest-scoring answers, from the answer cache (no engine is started for a recommendation)."""
    if evaluator is None or workload.quality is None:
        return []
    try:
        result = asyncio.run(evaluate_quality(workload, evaluator.deployment(best.config),
                                              cache_dir=evaluator.quality_dir, engine_factory=no_engine))
    except (QualityNotCached, Exception):
        return []
    worst = sorted(result.scores, key=lambda s: s.score)[:3]
    return [QualityExample(id=s.id, prompt=s.prompt, answer=s.answer, reference=s.reference, score=s.score)
            for s in worst]


def _evidence(best: TrialOutcome, command: str | None) -> Evidence:
    ev = Evidence(kind=best.kind, metric_definitions={m.name: f"{m.description} ({m.unit})" for m in METRICS.values()},
                  reproduce=redact_text(command) if command else redacted_command(sys.argv), probes=best.probes,
                  requests_per_probe=best.requests_per_probe, quality_source=best.quality_source,
                  quality_ci95=best.quality_ci95, expected_error=best.expected_error,
                  price={"source": best.cost.price_source, "as_of": best.cost.price_as_of},
                  node=best.dispatch if best.node else None)
    path = Path(best.evidence) / "manifest.json" if best.evidence else None
    if path is not None and path.is_file():
        manifest = json.loads(path.read_text())
        ev.directory, ev.versions, ev.hardware = best.evidence, manifest.get("versions"), manifest.get("hardware")
        ev.measured_at = manifest.get("ended_at")
        ev.engine = {k: v for k, v in (manifest.get("engine") or {}).items()
                     if k.endswith("version") or k in ("engine", "dtype")}
    else:
        ev.projection = "simulated with the step-time model; see the efficiency source"
        ev.efficiency = best.cost.capacity_basis
    return ev
