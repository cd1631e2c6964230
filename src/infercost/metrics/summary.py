"""Aggregate request records into the run summary: latency distributions, throughput, error rate, goodput and the
SLO verdict."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from pydantic import BaseModel

from infercost.loadgen.records import RequestRecord
from infercost.metrics.units import METRICS, PER_REQUEST_SLO_METRICS
from infercost.spec.workload import SLO

STANDARD_STATS = ("mean", "p50", "p90", "p95", "p99")


class Distribution(BaseModel):
    unit: str
    count: int
    stats: dict[str, float | None]


class SloCheck(BaseModel):
    metric: str
    stat: str
    bound: float
    observed: float | None
    passed: bool


class RunSummary(BaseModel):
    requests: int
    completed: int
    failed: int
    error_rate: float
    duration_s: float
    request_throughput_rps: float
    output_token_throughput_tps: float
    total_token_throughput_tps: float
    goodput_rps: float | None
    mean_input_tokens: float | None
    mean_output_tokens: float | None
    total_output_tokens: int
    token_count_sources: dict[str, int]
    latency: dict[str, Distribution]
    slo_checks: list[SloCheck]
    slo_met: bool | None
    errors: dict[str, int]
    memory: dict[str, Any] | None = None  # weights, KV cache, peaks: filled by the run from the engine


def stat(values: np.ndarray, name: str) -> float | None:
    if values.size == 0:
        return None
    if name == "mean":
        return float(values.mean())
    if name == "max":
        return float(values.max())
    return float(np.percentile(values, float(name[1:])))


def _strictest(bounds: dict[str, float]) -> float:
    return min(bounds.values())


def summarize(records: Iterable[RequestRecord], slo: SLO | None = None) -> RunSummary:
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    slo = slo or SLO()
    targets = slo.targets()

    samples = {name: np.array([v for r in ok for v in m.values(r)], dtype=float) for name, m in METRICS.items()}
    # Schedule lag is a property of sending, so it counts for failed requests too.
    samples["schedule_lag_ms"] = np.array([v for r in measured for v in METRICS["schedule_lag_ms"].values(r)])

    latency = {}
    for name, values in samples.items():
        names = set(STANDARD_STATS) | set(targets.get(name, {}))
        ordered = sorted(names, key=lambda s: (s == "max", s == "mean", float(s[1:]) if s[0] == "p" else 0))
        latency[name] = Distribution(unit=METRICS[name].unit, count=int(values.size),
                                     stats={s: stat(values, s) for s in ordered})

    starts = [r.sent_s for r in measured if r.sent_s is not None]
    ends = [r.end_s for r in measured if r.end_s is not None]
    duration = max(ends) - min(starts) if starts and ends else 0.0
    out_tokens = sum(r.output_tokens or 0 for r in ok)
    in_tokens = sum(r.input_tokens or 0 for r in ok)
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)

    error_rate = (len(measured) - len(ok)) / len(measured) if measured else 0.0
    checks = []
    for metric, bounds in targets.items():
        for s, bound in bounds.items():
            observed = latency[metric].stats.get(s)
            checks.append(SloCheck(metric=metric, stat=s, bound=bound, observed=observed,
                                   passed=observed is not None and observed <= bound))
    checks.append(SloCheck(metric="error_rate", stat="share", bound=slo.max_error_rate, observed=error_rate,
                           passed=error_rate <= slo.max_error_rate))

    goodput = None
    per_request = {m: _strictest(targets[m]) for m in PER_REQUEST_SLO_METRICS if m in targets}
    if per_request:
        good = 0
        for r in ok:
            values = {m: METRICS[m].values(r) for m in per_request}
            # No TPOT (a one-token answer) is judged on the other bounds; no first token at all is never good.
            if "ttft_ms" in values and not values["ttft_ms"]:
                continue
            if all(v <= per_request[m] for m, vals in values.items() for v in vals):
                good += 1
        goodput = per_s(good)

    sources: dict[str, int] = {}
    errors: dict[str, int] = {}
    for r in measured:
        if r.ok:
            sources[r.token_count_source or "unknown"] = sources.get(r.token_count_source or "unknown", 0) + 1
        else:
            key = (r.error or "unknown")[:120]
            errors[key] = errors.get(key, 0) + 1

    return RunSummary(
        requests=len(measured),
        completed=len(ok),
        failed=len(measured) - len(ok),
        error_rate=error_rate,
        duration_s=duration,
        request_throughput_rps=per_s(len(ok)),
        output_token_throughput_tps=per_s(out_tokens),
        total_token_throughput_tps=per_s(out_tokens + in_tokens),
        goodput_rps=goodput,
        mean_input_tokens=in_tokens / len(ok) if ok else None,
        mean_output_tokens=out_tokens / len(ok) if ok else None,
        total_output_tokens=out_tokens,
        token_count_sources=sources,
        latency=latency,
        slo_checks=checks,
        slo_met=all(c.passed for c in checks) if measured else None,
        errors=errors,
    )
