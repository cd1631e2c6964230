"""The capacity search algorithm and its probe guards. The search is driven here by a probe function with a known
threshold (a load at or below it passes): the search is pure logic over probe verdicts, and this is the one way to
know the right answer exactly. The real search on vLLM is in test_capacity_real."""

import asyncio

import pytest

from infercost.capacity import CapacityOptions, Probe
from infercost.capacity.guards import QueueGrowth, SloAlreadyLost, first_of
from infercost.capacity.result import sample_rule, strictest_percentile
from infercost.capacity.search import search_capacity
from infercost.loadgen.records import RequestRecord
from infercost.spec.workload import SLO


def threshold_probe(threshold: float):
    async def probe(load: float, phase: str, index: int) -> Probe:
        return Probe(index=index, phase=phase, load=load, passed=load <= threshold)

    return probe


def run(threshold, **options):
    return asyncio.run(search_capacity(threshold_probe(threshold), CapacityOptions(**options)))


@pytest.mark.parametrize("threshold", [0.3, 1.0, 2.9, 7.3, 40.0])
def test_rate_search_brackets_the_threshold_within_precision(threshold):
    out = run(threshold, precision=0.05)
    assert out.status == "found"
    assert out.best <= threshold < out.failed
    assert (out.failed - out.best) / out.best <= 0.05
    passed = [p.load for p in out.probes if p.passed]
    failed = [p.load for p in out.probes if not p.passed]
    assert max(passed) == out.best and min(failed) == out.failed
    phases = [p.phase for p in out.probes]
    assert phases[0] == "grow" and ("shrink" in phases) == (threshold < 1.0)


def test_doubling_then_bisection_sequence():
    out = run(5.0, precision=0.1)
    assert [p.load for p in out.probes] == [1, 2, 4, 8, 6, 5, 5.5]  # stops once (5.5 - 5) / 5 <= 0.1
    assert [p.phase for p in out.probes] == ["grow"] * 4 + ["bisect"] * 3


def test_concurrency_search_is_over_whole_users():
    out = run(6, mode="concurrency")
    assert out.best == 6 and out.failed == 7
    assert all(float(p.load).is_integer() for p in out.probes)


def test_limits_are_reported_not_hidden():
    assert run(1e9, max_load=64).status == "at_max"
    out = run(0.001, min_load=0.05)
    assert out.status == "below_min" and out.best is None
    out = run(5.0, precision=0.001, max_probes=6)
    assert out.status == "probe_limit" and len(out.probes) == 6 and out.best <= 5.0 < out.failed


def test_sample_rule():
    slo = SLO(ttft_ms={"p95": 500}, tpot_ms={"p50": 100})
    assert strictest_percentile(slo) == 0.95
    assert sample_rule(CapacityOptions(), slo)[0] == 200  # 10 / (1 - 0.95)
    assert sample_rule(CapacityOptions(), SLO(ttft_ms={"p99": 500}))[0] == 1000
    assert sample_rule(CapacityOptions(tail_samples=2), slo)[0] == 40
    assert sample_rule(CapacityOptions(tail_samples=1, min_requests=30), slo)[0] == 30
    assert sample_rule(CapacityOptions(requests=7), slo)[0] == 7
    assert sample_rule(CapacityOptions(), SLO(e2e_ms={"max": 9000}))[0] == 20


class _Gen:
    """The load generator's state as the guards see it (records and requests in flight, at a given time)."""

    def __init__(self, now, records=(), in_flight=()):
        self._now, self.records = now, list(records)
        self.in_flight = {r.index: r for r in in_flight}

    def now(self):
        return self._now


def _rec(i, sent, first=None, end=None):
    r = RequestRecord(request_id=str(i), index=i, warmup=False, scheduled_s=sent)
    r.sent_s, r.first_token_s, r.end_s = sent, first, end
    return r


def test_slo_already_lost_counts_finished_and_waiting_requests():
    guard = SloAlreadyLost(SLO(ttft_ms={"p90": 1000}), planned=20)  # p90 over 20 allows 2 over the bound
    slow = [_rec(i, 0.0, 1.5, 2.0) for i in range(2)]
    assert guard(_Gen(3.0, slow)) is None
    waiting = _rec(5, 1.0)  # no first token after 1.5 s: already over the bound
    reason = guard(_Gen(2.5, slow, [waiting]))
    assert reason and "ttft_ms p90" in reason and "allowed 2" in reason
    assert guard(_Gen(1.5, slow, [waiting])) is None  # 0.5 s waiting is not over yet
    assert SloAlreadyLost(SLO(tpot_ms={"p95": 10}), 20)(_Gen(99, slow)) is None  # TPOT is not judged early
    assert SloAlreadyLost(SLO(e2e_ms={"max": 1500}), 20)(_Gen(3, slow)) is not None


def test_queue_growth_and_first_of():
    gen = _Gen(1.0, in_flight=[_rec(i, 0.0) for i in range(5)])
    assert QueueGrowth(5)(gen) is None
    assert "5 requests in flight" in QueueGrowth(4)(gen)
    assert first_of(QueueGrowth(10), QueueGrowth(4))(gen).startswith("over-saturated")


def test_shrinking_stops_once_a_probe_fails_without_queueing():
    async def probe(load, phase, index):
        return Probe(index=index, phase=phase, load=load, passed=False, unloaded=load <= 0.25)

    out = asyncio.run(search_capacity(probe, CapacityOptions(start=2)))
    assert out.status == "below_min" and [p.load for p in out.probes] == [2, 1, 0.5, 0.25]


def _summary(ttft_s: float, n: int = 20):
    from infercost.metrics import summarize

    records = [RequestRecord(request_id=f"r{i}", index=i, warmup=False, scheduled_s=None, sent_s=float(i),
                             first_token_s=i + ttft_s, end_s=i + ttft_s + 0.1, token_times_s=[i + ttft_s],
                             input_tokens=10, output_tokens=2, token_count_source="engine") for i in range(n)]
    return summarize(records, SLO(ttft_ms={"p95": 300}))


def test_a_run_summary_becomes_a_probe_by_one_rule():
    """Measured and projected capacity judge a probe the same way: passed when every SLO check held and nothing
    stopped the load; the reason is the first failed check, else why it stopped."""
    from infercost.capacity.probes import probe_from_summary

    ok = probe_from_summary(0, "grow", 2.0, _summary(0.2), run_dir="probes/p0")
    assert ok.passed and ok.reason is None and ok.run_dir == "probes/p0" and ok.requests == 20
    assert ok.slo_observed["ttft_ms.p95"] == pytest.approx(200) and ok.unloaded  # 2 req/s x 0.3 s e2e <= 1

    slow = probe_from_summary(1, "grow", 4.0, _summary(0.5))
    assert not slow.passed and slow.reason == "ttft_ms p95 500 > 300" and slow.run_dir is None
    assert not probe_from_summary(1, "grow", 4.0, _summary(0.5), mark_unloaded=False).unloaded

    stopped = probe_from_summary(2, "grow", 8.0, _summary(0.2), stopped="queue over 64")
    assert not stopped.passed and stopped.reason == "queue over 64" and stopped.stopped_early == "queue over 64"
    assert probe_from_summary(3, "grow", 8.0, None, run_dir="x").reason == "no summary"


@pytest.mark.parametrize("mode", ["rate", "concurrency"])
def test_probes_become_a_capacity_result_by_one_rule(mode):
    """The capacity is the highest passing load; the requests per second it is priced at are the offered rate in
    rate mode and what the users achieved in concurrency mode."""
    from infercost.capacity.probes import capacity_found, no_capacity

    outcome = run(7.3, precision=0.05) if mode == "rate" else asyncio.run(
        search_capacity(threshold_probe(7), CapacityOptions(mode="concurrency")))
    outcome.probes = [p.model_copy(update={"achieved_rps": p.load * 0.5, "output_tps": p.load * 10})
                      for p in outcome.probes]
    fields = dict(workload="w", deployment="d", mode=mode, precision_asked=0.05, requests_per_probe=20,
                  sample_rule="r")
    result = capacity_found(outcome, **fields)
    assert result.status == "found" and result.capacity_load == outcome.best and result.probes == outcome.probes
    assert result.capacity_rps == (outcome.best if mode == "rate" else outcome.best * 0.5)
    assert result.capacity_output_tps == outcome.best * 10 and result.failed_load == outcome.failed
    assert result.best_probe().load == outcome.best

    none = no_capacity("infeasible", "does not fit", **fields)
    assert none.status == "infeasible" and none.capacity_rps is None and none.probes == [] and none.reason
