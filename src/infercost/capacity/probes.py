"""From runs to a capacity: how one run's summary becomes a probe (passed or not, and why), and how the probes a search
made become the capacity result. Measured and projected capacity both go through here, so a measured and a projected
figure are judged by the same rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infercost.capacity.result import CapacityResult, Probe
from infercost.capacity.search import Edges, SearchOutcome, edges
from infercost.metrics import RunSummary
from infercost.metrics.intervals import spread


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
    """The result of a search that ran: the highest load at which every run passed (with one run per load, the
    highest passing load), and the requests per second served there, which cost is computed from (the offered rate in
    rate mode; the least the users achieved across its runs in concurrency mode). The interval [low, high) brackets
    the true capacity. Where an edge's runs disagree the result is `unstable`, with the reason and the spread."""
    mode = fields["mode"]
    e = edges(outcome.probes, outcome.repeats)

    def served(load: float | None, pick: Any) -> float | None:
        if load is None:
            return None
        if mode == "rate":
            return load
        values = [p.achieved_rps for p in e.runs[load] if p.achieved_rps is not None]
        return pick(values) if values else None

    low_rps, high_rps = served(e.low, min), served(e.high, max)
    output = [p.output_tps for p in e.runs.get(e.low, []) if p.output_tps is not None]
    status, reason = outcome.status, fields.pop("reason", None)
    if e.stable is False:
        status, reason = "unstable", unstable_reason(e, mode)
    precision = None if e.low is None or e.high is None else (e.high - e.low) / e.low
    spreads = {f"{load:g}": edge_spread(ps) for load, ps in sorted(e.runs.items()) if len(ps) > 1}
    return CapacityResult(**fields, status=status, reason=reason, capacity_load=e.low, capacity_rps=low_rps,
                          capacity_output_tps=min(output) if output else None, failed_load=e.high,
                          precision_reached=precision, probes=outcome.probes, repeats=outcome.repeats,
                          capacity_low_rps=low_rps, capacity_high_rps=high_rps, stable=e.stable, edge_spread=spreads)


def edge_spread(runs: list[Probe]) -> dict[str, Any]:
    """Run-to-run spread at one load: each SLO statistic observed, and the requests per second served."""
    keys = dict.fromkeys(k for p in runs for k in p.slo_observed)
    out: dict[str, Any] = {k: spread([p.slo_observed.get(k) for p in runs]) for k in keys}
    out["achieved_rps"] = spread([p.achieved_rps for p in runs])
    return out


def unstable_reason(e: Edges, mode: str) -> str:
    unit = "users" if mode == "concurrency" else "req/s"
    parts = []
    for load in e.mixed:
        runs = e.runs[load]
        text = f"at {load:g} {unit} {sum(p.passed for p in runs)} of {len(runs)} runs passed"
        key = next((k for p in runs for k in p.slo_observed if not k.startswith("error")), None)
        s = spread([p.slo_observed.get(key) for p in runs]) if key else None
        if s is not None:
            text += f"; {key} ranged {s['min']:.4g}–{s['max']:.4g} ms across runs"
        parts.append(text)
    return "unstable within noise: " + "; ".join(parts)


def no_capacity(status: str, reason: str | None, probes: list[Probe] | None = None, **fields: Any) -> CapacityResult:
    """The result of a search with no capacity to report: `infeasible` (the deployment cannot run or fit) or
    `failed` (a probe's run failed), with the reason and the probes made before it stopped."""
    return CapacityResult(**fields, status=status, capacity_load=None, capacity_rps=None, capacity_output_tps=None,
                          failed_load=None, precision_reached=None, probes=probes or [], reason=reason)
