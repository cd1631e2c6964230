"""From runs to a capacity: how one run's summary becomes a probe (passed or not, and why), and how the probes a search
made become the capacity result. Measured and projected capacity both go through here, so a measured and a projected
figure are judged by the same rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infercost.capacity.result import CapacityResult, Probe
from infercost.capacity.search import SearchOutcome
from infercost.metrics import RunSummary


def probe_from_summary(index: int, phase: str, load: float, summary: RunSummary | None, stopped: str | None = None,
                       run_dir: str | Path | None = None, mark_unloaded: bool = True) -> Probe:
    """A probe passes when every SLO check held and the load was not stopped early; its reason is the first check
    that failed (or why it stopped). `mark_unloaded` flags a probe with about one request in the system at a time
    (load x mean e2e <= 1), where less load cannot help, so the search stops shrinking."""
    where = None if run_dir is None else str(run_dir)
    if summary is None:
        return Probe(index=index, phase=phase, load=load, passed=False, reason="no summary", run_dir=where)
    failed = [c for c in summary.slo_checks if not c.passed]
    reason = stopped
    if reason is None and failed:
        c = failed[0]
        observed = "none" if c.observed is None else f"{c.observed:.4g}"
        reason = f"{c.metric} {c.stat} {observed} > {c.bound:g}"
    observed = {f"{c.metric}.{c.stat}": c.observed for c in summary.slo_checks}
    unloaded = False
    if mark_unloaded and summary.completed:
        e2e = summary.latency["e2e_ms"].stats.get("mean")
        unloaded = e2e is not None and load * e2e / 1e3 <= 1.0
    return Probe(
        index=index, phase=phase, load=load, passed=bool(summary.slo_met) and stopped is None, reason=reason,
        requests=summary.requests, completed=summary.completed, error_rate=summary.error_rate,
        achieved_rps=summary.request_throughput_rps, output_tps=summary.output_token_throughput_tps,
        slo_observed=observed, stopped_early=stopped, unloaded=unloaded, run_dir=where,
    )


def capacity_found(outcome: SearchOutcome, **fields: Any) -> CapacityResult:
    """The result of a search that ran: the highest passing load, and the requests per second served there, which
    cost is computed from (the offered rate in rate mode; what the users achieved in concurrency mode)."""
    best = next((p for p in reversed(outcome.probes) if p.passed and p.load == outcome.best), None)
    capacity_rps = None
    if best is not None:
        capacity_rps = best.load if fields["mode"] == "rate" else best.achieved_rps
    return CapacityResult(**fields, status=outcome.status, capacity_load=outcome.best, capacity_rps=capacity_rps,
                          capacity_output_tps=best.output_tps if best else None, failed_load=outcome.failed,
                          precision_reached=outcome.precision, probes=outcome.probes)


def no_capacity(status: str, reason: str | None, probes: list[Probe] | None = None, **fields: Any) -> CapacityResult:
    """The result of a search with no capacity to report: `infeasible` (the deployment cannot run or fit) or
    `failed` (a probe's run failed), with the reason and the probes made before it stopped."""
    return CapacityResult(**fields, status=status, capacity_load=None, capacity_rps=None, capacity_output_tps=None,
                          failed_load=None, precision_reached=None, probes=probes or [], reason=reason)
