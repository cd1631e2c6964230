"""Early stops for a probe, asked before each request is sent. A probe whose SLO is already lost, or whose queue
keeps growing, cannot pass: running it to the end would only spend minutes confirming it."""

from __future__ import annotations

import math

from infercost.spec.workload import SLO
from infercost.spec.vocabulary import percentile


class SloAlreadyLost:
    """More requests already exceed a TTFT or end-to-end bound than the percentile allows over the planned run
    (e.g. p95 over 200 requests allows 10). Requests still waiting count once they pass the bound."""

    def __init__(self, slo: SLO, planned: int):
        self.limits = []  # (metric, stat, bound ms, violations allowed)
        for metric in ("ttft_ms", "e2e_ms"):
            for stat, bound in slo.targets().get(metric, {}).items():
                if stat == "max":
                    allowed = 0
                elif percentile(stat) is not None:
                    allowed = math.floor((1 - percentile(stat) / 100) * planned + 1e-9)
                else:
                    continue
                self.limits.append((metric, stat, bound, allowed))

    def __call__(self, gen) -> str | None:
        if not self.limits:
            return None
        now_ms = gen.now() * 1000
        finished = [r for r in gen.records if not r.warmup and r.ok]
        for metric, stat, bound, allowed in self.limits:
            over = 0
            for r in finished:
                start = r.sent_s
                end = r.first_token_s if metric == "ttft_ms" else r.end_s
                if start is not None and end is not None and (end - start) * 1000 > bound:
                    over += 1
            for r in gen.in_flight.values():
                waiting = r.first_token_s is None if metric == "ttft_ms" else True
                if waiting and r.sent_s is not None and now_ms - r.sent_s * 1000 > bound:
                    over += 1
            if over > allowed:
                return f"SLO already lost: {over} requests over {metric} {stat} bound {bound:g} ms (allowed {allowed})"
        return None


class QueueGrowth:
    """Requests in flight beyond `limit`: arrivals outpace completions."""

    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, gen) -> str | None:
        n = len(gen.in_flight)
        if n > self.limit:
            return f"over-saturated: {n} requests in flight (limit {self.limit})"
        return None


def first_of(*checks):
    def check(gen) -> str | None:
        for c in checks:
            reason = c(gen)
            if reason:
                return reason
        return None

    return check
