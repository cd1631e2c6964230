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


# ------------------------------------------------------------------ repeats at the edges
# The probes below are fakes, named as such: a scripted run-to-run flap is noise a real engine cannot show on demand.

def fake_flapping_probe(threshold: float, script: dict[float, list[bool]] | None = None,
                        ttft: dict[float, list[float]] | None = None):
    """Passes at or below `threshold`, except where `script` gives the verdicts of a load's successive runs; each
    run's observed TTFT p95 comes from `ttft` (else 100 ms below the threshold, 100 ms over above it)."""
    seen: dict[float, int] = {}

    async def probe(load: float, phase: str, index: int) -> Probe:
        k = seen[load] = seen.get(load, 0) + 1
        verdicts = (script or {}).get(load)
        passed = verdicts[k - 1] if verdicts else load <= threshold
        observed = (ttft or {}).get(load, [])
        value = observed[k - 1] if len(observed) >= k else (100.0 if passed else 900.0)
        return Probe(index=index, phase=phase, load=load, passed=passed, achieved_rps=load * (0.9 + 0.01 * k),
                     output_tps=load * 10, slo_observed={"ttft_ms.p95": value, "error_rate.share": 0.0})

    return probe


def searched(probe, repeats: int, **options):
    from infercost.capacity.search import repeat_edges

    opts = CapacityOptions(repeats=repeats, **options)
    return asyncio.run(_search_then_repeat(probe, opts, repeat_edges))


async def _search_then_repeat(probe, options, repeat_edges):
    return await repeat_edges(probe, await search_capacity(probe, options), options.repeats)


def result_of(outcome, mode="rate", reason=None):
    from infercost.capacity.probes import capacity_found

    return capacity_found(outcome, workload="w", deployment="d", mode=mode, precision_asked=0.1,
                          requests_per_probe=20, sample_rule="r", reason=reason)


def test_stable_edges_are_rerun_until_each_has_its_runs_and_agree():
    out = searched(fake_flapping_probe(5.0), 3, precision=0.1)
    loads = [p.load for p in out.probes]
    assert loads == [1, 2, 4, 8, 6, 5, 5.5, 5, 5, 5.5, 5.5]  # the search, then the pass edge, then the fail edge
    assert [p.phase for p in out.probes][-4:] == ["repeat"] * 4 and out.best == 5 and out.failed == 5.5
    result = result_of(out, reason="kept")
    assert result.status == "found" and result.stable is True and result.repeats == 3 and result.reason == "kept"
    assert result.capacity_load == result.capacity_rps == result.capacity_low_rps == 5
    assert result.capacity_high_rps == result.failed_load == 5.5 and result.precision_reached == pytest.approx(0.1)
    assert set(result.edge_spread) == {"5", "5.5"}
    at5 = result.edge_spread["5"]
    assert at5["ttft_ms.p95"]["n"] == 3 and at5["ttft_ms.p95"]["cv"] == 0
    assert at5["achieved_rps"]["min"] == pytest.approx(5 * 0.91) and at5["achieved_rps"]["max"] == pytest.approx(5 * 0.93)


def test_the_probe_budget_limits_the_search_and_repeats_come_on_top():
    out = searched(fake_flapping_probe(5.0), 4, precision=0.001, max_probes=6)
    assert out.status == "probe_limit"
    assert len(out.probes) == 6 + 2 * (4 - 1)
    assert sum(p.phase == "repeat" for p in out.probes) == 6


def test_a_flapping_pass_edge_is_unstable_and_reports_the_highest_load_every_run_passed():
    probe = fake_flapping_probe(5.0, script={5: [True, False, True]}, ttft={5: [240.0, 310.5, 275.0]})
    result = result_of(searched(probe, 3, precision=0.1))
    assert result.status == "unstable" and result.stable is False
    assert result.reason == ("unstable within noise: at 5 req/s 2 of 3 runs passed; ttft_ms.p95 ranged 240–310.5 ms "
                             "across runs")
    assert result.capacity_load == result.capacity_rps == result.capacity_low_rps == 4  # conservative
    assert result.capacity_high_rps == result.failed_load == 5.5  # every run failed there; 5 is mixed
    assert result.edge_spread["5"]["ttft_ms.p95"]["min"] == 240 and result.edge_spread["5"]["ttft_ms.p95"]["n"] == 3
    assert result.best_probe().load == 4 and result.capacity_output_tps == 40


def test_a_flapping_fail_edge_is_unstable_and_the_interval_moves_up_to_a_load_that_always_failed():
    probe = fake_flapping_probe(5.0, script={5.5: [False, True]})
    result = result_of(searched(probe, 2, precision=0.1))
    assert result.status == "unstable" and "at 5.5 req/s 1 of 2 runs passed" in result.reason
    assert result.capacity_load == 5 and result.capacity_high_rps == result.failed_load == 6


def test_an_edge_that_only_ever_passes_once_leaves_no_capacity():
    probe = fake_flapping_probe(0.0, script={1: [True, False]})  # the first probe passes, then fails on its repeat
    result = result_of(searched(probe, 2, max_load=1))
    assert result.status == "unstable" and result.capacity_load is None and result.capacity_rps is None


def test_without_repeats_the_interval_is_the_bracket():
    result = result_of(searched(fake_flapping_probe(5.0), 1, precision=0.1))
    assert result.repeats == 1 and result.stable is None and result.edge_spread == {}
    assert not any(p.phase == "repeat" for p in result.probes)
    assert (result.capacity_low_rps, result.capacity_high_rps) == (5, 5.5)  # the capacity lies in [5, 5.5)

    users = asyncio.run(search_capacity(fake_flapping_probe(6), CapacityOptions(mode="concurrency")))
    r = result_of(users, mode="concurrency")
    assert r.capacity_load == 6 and r.capacity_low_rps == r.capacity_rps == pytest.approx(6 * 0.91)
    assert r.capacity_high_rps == pytest.approx(7 * 0.91)  # what the users achieved at the failing load


def test_concurrency_repeats_take_the_least_served_at_low_and_the_most_at_high():
    out = searched(fake_flapping_probe(6), 3, mode="concurrency")
    r = result_of(out, mode="concurrency")
    assert r.stable is True and r.capacity_load == 6
    assert r.capacity_low_rps == r.capacity_rps == pytest.approx(6 * 0.91)
    assert r.capacity_high_rps == pytest.approx(7 * 0.93)


def test_repeats_option_and_older_results():
    from infercost.api import _capacity_options
    from infercost.capacity import CapacityResult
    from infercost.errors import InputError

    assert _capacity_options({"repeats": 3}).repeats == 3 and CapacityOptions().repeats == 1
    with pytest.raises(InputError):
        _capacity_options({"repeats": 11})
    old = result_of(run(7.3, precision=0.05)).model_dump(mode="json")
    for key in ("repeats", "capacity_low_rps", "capacity_high_rps", "stable", "edge_spread"):
        old.pop(key)  # a capacity.json written before repeats existed
    loaded = CapacityResult.model_validate(old)
    assert loaded.repeats == 1 and loaded.stable is None and loaded.capacity_low_rps is None


def test_repeated_probes_draw_with_a_new_seed():
    from infercost.capacity.measured import probe_workload
    from infercost.spec import load_workload

    from conftest import WORKLOADS

    w = load_workload(WORKLOADS / "chat-support.yaml")
    first = probe_workload(w, CapacityOptions(), 2.0, 20, first=True)
    again = probe_workload(w, CapacityOptions(), 2.0, 20, first=False, run=1)
    assert again.traffic.seed == first.traffic.seed + 1 and again.traffic.warmup_requests == 0


def test_the_capacity_command_takes_repeats_and_prints_the_verdict():
    from io import StringIO

    from rich.console import Console

    from infercost.cli import build_parser
    from infercost.cli.common import options_from
    from infercost.cli.measuring import CAPACITY_OPTIONS
    from infercost.report.console import print_capacity

    args = build_parser().parse_args(["capacity", "w.yaml", "--repeats", "3"])
    assert options_from(args, CapacityOptions, CAPACITY_OPTIONS).repeats == 3
    buf = StringIO()
    probe = fake_flapping_probe(5.0, script={5: [True, False, True]}, ttft={5: [240.0, 310.5, 275.0]})
    print_capacity(Console(file=buf, width=200), result_of(searched(probe, 3, precision=0.1)))
    text = buf.getvalue()
    assert "repeat" in text and "unstable within noise" in text and "interval [4.000, 5.500)" in text
    assert "spread at 5 req/s over 3 runs: ttft p95 240–310.5 ms" in text
