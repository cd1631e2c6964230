"""Aggregate request records into the run summary: latency distributions, throughput, error rate, goodput and the
SLO verdict."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from pydantic import BaseModel, Field

from infercost.loadgen.records import RequestRecord
from infercost.metrics.columns import Columns
from infercost.metrics.intervals import LEVEL, rate_interval, stat_interval
from infercost.metrics.units import METRICS
from infercost.spec.vocabulary import PER_REQUEST_SLO_METRICS, STANDARD_STATS, percentile, stat_order
from infercost.spec.workload import SLO

class Distribution(BaseModel):
    unit: str
    count: int
    stats: dict[str, float | None]
    # 95% interval of each statistic from these samples (order statistics for percentiles, bootstrap for the
    # mean); None where the samples cannot bound it (p99 of 50 requests)
    intervals: dict[str, tuple[float, float] | None] = Field(default_factory=dict)


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
    # of the output tokens, a reasoning model's thinking (where the server counted it); of the input, the tokens
    # the server's prefix cache served (where it said)
    mean_reasoning_tokens: float | None = None
    mean_cached_input_tokens: float | None = None
    token_count_sources: dict[str, int]
    latency: dict[str, Distribution]
    slo_checks: list[SloCheck]
    slo_met: bool | None
    errors: dict[str, int]
    memory: dict[str, Any] | None = None  # weights, KV cache, peaks: filled by the run from the engine
    # 95% intervals of the rates (requests, output tokens, good requests per second), resampling requests over the
    # run's duration; the latency statistics carry theirs in `latency`
    intervals: dict[str, tuple[float, float] | None] = Field(default_factory=dict)
    confidence_level: float = LEVEL
    repeats: dict[str, Any] | None = None  # across repeated replays: each one's figures and their spread
    # multi-turn: figures per turn index (turn 0 is each session's first) and per session
    by_turn: dict[str, dict[str, Any]] | None = None
    sessions: dict[str, Any] | None = None
    by_phase: dict[str, dict[str, Any]] | None = None  # traffic.phases, in order (an excluded warm-up included)


def stat(values: np.ndarray, name: str) -> float | None:
    if values.size == 0:
        return None
    if name == "mean":
        return float(values.mean())
    if name == "max":
        return float(values.max())
    return float(np.percentile(values, percentile(name)))


def _mean_of(records: list[RequestRecord], name: str) -> float | None:
    """The mean over the records that have the count (None when none has: the server did not say)."""
    values = [getattr(r, name) for r in records if getattr(r, name) is not None]
    return sum(values) / len(values) if values else None


def _strictest(bounds: dict[str, float]) -> float:
    return min(bounds.values())


def _distribution(name: str, values: np.ndarray, targets: dict[str, dict[str, float]],
                  intervals: bool = False) -> Distribution:
    """The standard statistics and any the SLO bounds, in order, with their 95% intervals if asked."""
    ordered = sorted(set(STANDARD_STATS) | set(targets.get(name, {})), key=stat_order)
    return Distribution(unit=METRICS[name].unit, count=int(values.size), stats={s: stat(values, s) for s in ordered},
                        intervals={s: stat_interval(values, s) for s in ordered} if intervals else {})


def _slo_checks(latency: dict[str, Distribution], slo: SLO, error_rate: float) -> list[SloCheck]:
    checks = []
    for metric, bounds in slo.targets().items():
        for s, bound in bounds.items():
            observed = latency[metric].stats.get(s)
            checks.append(SloCheck(metric=metric, stat=s, bound=bound, observed=observed,
                                   passed=observed is not None and observed <= bound))
    checks.append(SloCheck(metric="error_rate", stat="share", bound=slo.max_error_rate, observed=error_rate,
                           passed=error_rate <= slo.max_error_rate))
    return checks


def summarize(records: Iterable[RequestRecord], slo: SLO | None = None, intervals: bool = True,
              lean: bool = False) -> RunSummary:
    """`intervals=False` leaves out the 95% intervals (resampled, most of the cost); `lean=True` is
    `summarize_columns`: only the latency metrics the SLO bounds, for a probe judged on its SLO checks alone."""
    records = list(records)
    if lean:
        return summarize_columns(Columns.of(records), slo)
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    slo = slo or SLO()
    targets = slo.targets()

    samples = {name: np.array([v for r in ok for v in m.values(r)], dtype=float) for name, m in METRICS.items()}
    # Schedule lag is a property of sending, so it counts for failed requests too.
    samples["schedule_lag_ms"] = np.array([v for r in measured for v in METRICS["schedule_lag_ms"].values(r)])
    latency = {name: _distribution(name, values, targets, intervals) for name, values in samples.items()}

    starts = [r.sent_s for r in measured if r.sent_s is not None]
    ends = [r.end_s for r in measured if r.end_s is not None]
    duration = max(ends) - min(starts) if starts and ends else 0.0
    out_tokens = sum(r.output_tokens or 0 for r in ok)
    in_tokens = sum(r.input_tokens or 0 for r in ok)
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)

    error_rate = (len(measured) - len(ok)) / len(measured) if measured else 0.0
    checks = _slo_checks(latency, slo, error_rate)

    goodput = None
    per_request = {m: _strictest(targets[m]) for m in PER_REQUEST_SLO_METRICS if m in targets}
    good_flags = []
    if per_request:
        for r in measured:
            values = {m: METRICS[m].values(r) for m in per_request} if r.ok else {}
            # No TPOT (a one-token answer) is judged on the other bounds; no first token at all is never good.
            good_flags.append(r.ok and not ("ttft_ms" in values and not values["ttft_ms"])
                              and all(v <= per_request[m] for m, vals in values.items() for v in vals))
        goodput = per_s(sum(good_flags))
    intervals = {} if not intervals else {
        "request_throughput_rps": rate_interval(np.array([r.ok for r in measured]), duration),
        "output_token_throughput_tps": rate_interval(
            np.array([(r.output_tokens or 0) if r.ok else 0 for r in measured]), duration),
        "goodput_rps": rate_interval(np.array(good_flags), duration) if per_request else None,
    }

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
        mean_reasoning_tokens=_mean_of(ok, "reasoning_tokens"),
        mean_cached_input_tokens=_mean_of(ok, "cached_input_tokens"),
        token_count_sources=sources,
        latency=latency,
        slo_checks=checks,
        slo_met=all(c.passed for c in checks) if measured else None,
        errors=errors,
        intervals=intervals,
        **_multi_turn(measured),
        by_phase=_phases(list(records)),
    )


def summarize_columns(c: Columns, slo: SLO | None = None) -> RunSummary:
    """The lean summary, from columns: counts, rates, the SLO-bound latency metrics (no intervals) and the SLO
    checks, with the same definitions as `summarize` (the tests hold them equal). No multi-turn or phase figures."""
    slo = slo or SLO()
    targets = slo.targets()
    ok = c.ok
    n, completed = len(c.sent), int(ok.sum())
    columns = {name: METRICS[name].column(c) for name in METRICS if name in targets}
    latency = {name: _distribution(name, values[~np.isnan(values)] if METRICS[name].per_request else values, targets)
               for name, values in columns.items()}
    starts, ends = c.sent[~np.isnan(c.sent)], c.end[~np.isnan(c.end)]
    duration = float(ends.max() - starts.min()) if starts.size and ends.size else 0.0
    out_tokens = int(np.nansum(np.where(ok, c.output_tokens, 0)))
    in_tokens = int(np.nansum(np.where(ok, c.input_tokens, 0)))
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    error_rate = (n - completed) / n if n else 0.0
    checks = _slo_checks(latency, slo, error_rate)
    goodput = None
    per_request = {m: _strictest(targets[m]) for m in PER_REQUEST_SLO_METRICS if m in targets}
    if per_request:
        good = ok.copy()
        for m, bound in per_request.items():
            v = columns[m]
            with np.errstate(invalid="ignore"):
                # no first token is never good; no TPOT (a one-token answer) is judged on the other bounds
                good &= (v <= bound) if m != "tpot_ms" else (np.isnan(v) | (v <= bound))
        goodput = per_s(int(good.sum()))
    errors: dict[str, int] = {}
    if completed < n:
        reasons = c.error if c.error is not None else np.full(n, None, dtype=object)
        for e in reasons[~ok]:
            key = (e or "unknown")[:120]
            errors[key] = errors.get(key, 0) + 1
    return RunSummary(
        requests=n, completed=completed, failed=n - completed, error_rate=error_rate, duration_s=duration,
        request_throughput_rps=per_s(completed), output_token_throughput_tps=per_s(out_tokens),
        total_token_throughput_tps=per_s(out_tokens + in_tokens), goodput_rps=goodput,
        mean_input_tokens=in_tokens / completed if completed else None,
        mean_output_tokens=out_tokens / completed if completed else None, total_output_tokens=out_tokens,
        token_count_sources=dict(c.sources), latency=latency, slo_checks=checks,
        slo_met=all(x.passed for x in checks) if n else None, errors=errors)


def _phases(records: list[RequestRecord]) -> dict[str, dict[str, Any]] | None:
    """Each phase's own figures: requests, throughput over the phase's span, and its latency percentiles."""
    names = list(dict.fromkeys(r.phase for r in records if r.phase is not None))
    if not names:
        return None
    out = {}
    for name in names:
        rs = [r for r in records if r.phase == name]
        ok = [r for r in rs if r.ok]
        span = (max(r.end_s for r in ok) - min(r.sent_s for r in rs if r.sent_s is not None)) if ok else 0.0
        figures: dict[str, Any] = {"requests": len(rs), "completed": len(ok), "excluded": rs[0].warmup,
                                   "request_throughput_rps": len(ok) / span if span > 0 else None}
        for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
            values = np.array([v for r in ok for v in METRICS[metric].values(r)])
            figures[metric] = {k: stat(values, k) for k in ("p50", "p95", "p99")}
        out[name] = figures
    return out


def _multi_turn(measured: list[RequestRecord]) -> dict[str, Any]:
    """TTFT, prompt length and answers by turn index (a prefix cache shows as TTFT that stays flat while the prompt
    grows), and sessions: how many, how many completed every turn, turns and duration per session."""
    if not any(r.turn is not None for r in measured):
        return {}
    by_turn: dict[str, dict[str, Any]] = {}
    for turn in sorted({r.turn for r in measured if r.turn is not None}):
        rs = [r for r in measured if r.turn == turn]
        ok = [r for r in rs if r.ok]
        ttft = np.array([v for r in ok for v in METRICS["ttft_ms"].values(r)])
        by_turn[str(turn)] = {"requests": len(rs), "completed": len(ok),
                              "ttft_ms": {k: stat(ttft, k) for k in ("mean", "p50", "p95")},
                              "mean_input_tokens": _mean_of(ok, "input_tokens"),
                              "mean_output_tokens": _mean_of(ok, "output_tokens")}
    sessions: dict[Any, list[RequestRecord]] = {}
    for r in measured:
        if r.session is not None:
            sessions.setdefault(r.session, []).append(r)
    durations = np.array([max(x.end_s for x in rs) - min(x.sent_s for x in rs) for rs in sessions.values()
                          if all(x.sent_s is not None and x.end_s is not None for x in rs)])
    return {"by_turn": by_turn, "sessions": {
        "sessions": len(sessions), "completed_every_turn": sum(all(x.ok for x in rs) for rs in sessions.values()),
        "mean_turns": float(np.mean([len(rs) for rs in sessions.values()])) if sessions else None,
        "session_s": {k: stat(durations, k) for k in ("mean", "p50", "p95")}}}
