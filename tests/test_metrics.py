"""Metric definitions checked on hand-built records whose answers are known."""

import numpy as np
import pytest

from infercost.loadgen.records import RequestRecord
from infercost.metrics import summarize
from infercost.spec.workload import SLO


def rec(i, sent, first, end, tokens, times=None, error=None, scheduled=None, warmup=False, source="engine"):
    return RequestRecord(
        request_id=f"r{i}", index=i, warmup=warmup, scheduled_s=scheduled, sent_s=sent, first_token_s=first,
        end_s=end, token_times_s=times or [], input_tokens=10, output_tokens=tokens, token_count_source=source,
        error=error,
    )


def test_ttft_tpot_e2e_itl_definitions():
    # sent at 1.0, first token at 1.2, tokens at 1.2, 1.3, 1.5, end 1.5 with 3 tokens:
    # TTFT 200 ms; e2e 500 ms; TPOT (500-200)/(3-1) = 150 ms; ITL gaps 100 and 200 ms.
    s = summarize([rec(0, 1.0, 1.2, 1.5, 3, [1.2, 1.3, 1.5])])
    assert s.latency["ttft_ms"].stats["mean"] == pytest.approx(200)
    assert s.latency["e2e_ms"].stats["mean"] == pytest.approx(500)
    assert s.latency["tpot_ms"].stats["mean"] == pytest.approx(150)
    assert s.latency["itl_ms"].count == 2
    assert s.latency["itl_ms"].stats["mean"] == pytest.approx(150)
    assert s.latency["itl_ms"].stats["p50"] == pytest.approx(150)


def test_percentiles_match_numpy_linear_interpolation():
    ttfts = np.arange(1, 101) / 1000.0  # 1..100 ms
    records = [rec(i, 0.0, t, t + 0.01, 2, [t, t + 0.01]) for i, t in enumerate(ttfts)]
    s = summarize(records, SLO(ttft_ms={"p99.9": 1000}))
    stats = s.latency["ttft_ms"].stats
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["p99.9"] == pytest.approx(99.901)


def test_single_token_requests_have_no_tpot_and_warmup_is_excluded():
    records = [rec(0, 0, 0.1, 0.1, 1, [0.1]), rec(1, 0, 5.0, 9.0, 5, [5.0], warmup=True)]
    s = summarize(records)
    assert s.requests == 1
    assert s.latency["tpot_ms"].count == 0
    assert s.latency["tpot_ms"].stats["p50"] is None
    assert s.latency["ttft_ms"].stats["mean"] == pytest.approx(100)


def test_throughput_error_rate_and_goodput():
    # Four requests within a 2-second window; one fails; one is too slow for the TTFT bound.
    records = [
        rec(0, 0.0, 0.1, 1.0, 10, [0.1, 1.0]),
        rec(1, 0.5, 0.6, 1.5, 10, [0.6, 1.5]),
        rec(2, 1.0, 1.9, 2.0, 10, [1.9, 2.0]),  # TTFT 900 ms
        rec(3, 1.0, None, 1.2, None, error="HTTP 500: boom"),
    ]
    slo = SLO(ttft_ms={"p95": 500}, max_error_rate=0.1)
    s = summarize(records, slo)
    assert s.duration_s == pytest.approx(2.0)
    assert s.completed == 3 and s.failed == 1
    assert s.error_rate == pytest.approx(0.25)
    assert s.request_throughput_rps == pytest.approx(1.5)
    assert s.output_token_throughput_tps == pytest.approx(15.0)
    assert s.total_token_throughput_tps == pytest.approx(30.0)
    assert s.goodput_rps == pytest.approx(1.0)  # two good requests / 2 s
    assert s.errors == {"HTTP 500: boom": 1}
    verdicts = {(c.metric, c.stat): c.passed for c in s.slo_checks}
    assert verdicts[("error_rate", "share")] is False
    assert verdicts[("ttft_ms", "p95")] is False  # p95 of 100, 100, 900 ms is > 500
    assert s.slo_met is False


def test_goodput_uses_the_strictest_bound_and_slo_passes_when_all_hold():
    records = [rec(i, 0.0, 0.1, 0.5, 5, [0.1, 0.5]) for i in range(10)]
    s = summarize(records, SLO(ttft_ms={"p50": 150, "p99": 400}, e2e_ms={"p95": 600}, max_error_rate=0))
    assert s.slo_met is True
    assert s.goodput_rps == pytest.approx(10 / 0.5)
    strict = summarize(records, SLO(ttft_ms={"p50": 90, "p99": 400}))
    assert strict.goodput_rps == 0


def test_schedule_lag_counts_failed_requests():
    records = [rec(0, 0.003, 0.1, 0.2, 2, [0.1, 0.2], scheduled=0.0),
               rec(1, 0.105, None, 0.2, None, error="x", scheduled=0.1)]
    s = summarize(records)
    assert s.latency["schedule_lag_ms"].count == 2
    assert s.latency["schedule_lag_ms"].stats["mean"] == pytest.approx(4.0)
