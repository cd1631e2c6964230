"""Intervals against records with known distributions: each 95% interval must contain the true value about 95% of
the time over many simulated runs, and must say "cannot tell" where the samples cannot bound the statistic."""

import numpy as np
import pytest

from infercost.loadgen.records import RequestRecord
from infercost.metrics import summarize
from infercost.metrics.intervals import mean_interval, percentile_interval, rate_interval, spread

RUNS = 400


def _coverage(draw, interval, truth) -> tuple[float, int]:
    rng = np.random.default_rng(42)
    hits = none = 0
    for _ in range(RUNS):
        ci = interval(draw(rng))
        if ci is None:
            none += 1
        elif ci[0] <= truth <= ci[1]:
            hits += 1
    return hits / (RUNS - none) if RUNS > none else 0.0, none


@pytest.mark.parametrize("p", [50, 90, 95])
def test_percentile_intervals_cover_the_true_quantile_of_an_exponential(p):
    truth = -np.log(1 - p / 100)  # quantile of Exp(1)
    covered, undecided = _coverage(lambda rng: rng.exponential(1.0, 200), lambda x: percentile_interval(x, p), truth)
    assert undecided == 0 and 0.93 <= covered <= 0.995, covered


def test_percentile_intervals_cover_a_lognormal_tail_with_many_samples():
    """Above the exact-binomial size the normal approximation of the ranks takes over: still covers."""
    truth = np.exp(1.6449 * 0.5)  # p95 of lognormal(0, 0.5)
    covered, undecided = _coverage(lambda rng: rng.lognormal(0, 0.5, 8000), lambda x: percentile_interval(x, 95),
                                   truth)
    assert undecided == 0 and 0.92 <= covered <= 0.99, covered


def test_a_tail_the_samples_cannot_bound_has_no_interval():
    x = np.random.default_rng(0).normal(size=50)
    assert percentile_interval(x, 99) is None  # 50 samples cannot put a 95% bound above the 99th percentile
    assert percentile_interval(x, 50) is not None
    assert percentile_interval(np.array([]), 50) is None


def test_the_mean_interval_covers_a_normal_mean_and_narrows_with_n():
    covered, _ = _coverage(lambda rng: rng.normal(10, 2, 100), mean_interval, 10.0)
    assert 0.92 <= covered <= 0.99, covered
    rng = np.random.default_rng(1)
    small, large = mean_interval(rng.normal(10, 2, 50)), mean_interval(rng.normal(10, 2, 5000))
    assert large[1] - large[0] < (small[1] - small[0]) / 5


def test_intervals_are_reproducible():
    x = np.random.default_rng(3).gamma(2.0, size=300)
    assert mean_interval(x) == mean_interval(x) and rate_interval(x > 1, 30.0) == rate_interval(x > 1, 30.0)


def test_rate_interval_contains_the_rate_and_covers_a_known_success_share():
    # 1000 requests over 100 s, each completed with probability 0.9: the true rate is 9 req/s
    covered, _ = _coverage(lambda rng: rng.random(1000) < 0.9, lambda s: rate_interval(s, 100.0), 9.0)
    assert 0.92 <= covered <= 0.99, covered


def _records(ttft_ms: np.ndarray) -> list[RequestRecord]:
    out = []
    for i, t in enumerate(ttft_ms):
        sent = i * 0.1
        first = sent + t / 1e3
        out.append(RequestRecord(request_id=f"r{i}", index=i, warmup=False, scheduled_s=sent, sent_s=sent,
                                 first_token_s=first, end_s=first + 0.05, output_tokens=6, input_tokens=10,
                                 token_times_s=[first + k * 0.01 for k in range(6)], token_count_source="engine"))
    return out


def test_the_summary_carries_intervals_for_latency_and_rates():
    ttft = np.random.default_rng(5).exponential(100.0, 400)
    s = summarize(_records(ttft))
    d = s.latency["ttft_ms"]
    for stat in ("p50", "p90", "p95", "mean"):
        lo, hi = d.intervals[stat]
        assert lo <= d.stats[stat] <= hi, stat
    assert d.intervals["p99"] is not None  # 400 samples bound p99
    lo, hi = s.intervals["request_throughput_rps"]
    assert lo <= s.request_throughput_rps <= hi
    assert s.confidence_level == 0.95
    # TPOT is constant here (10 ms per token): its interval collapses onto it
    assert s.latency["tpot_ms"].intervals["p50"] == pytest.approx((10.0, 10.0))


def test_spread_across_repeats():
    assert spread([10.0, 12.0, 11.0]) == pytest.approx({"n": 3, "min": 10.0, "max": 12.0, "mean": 11.0, "cv": 1 / 11})
    assert spread([None]) is None and spread([5.0])["cv"] is None
