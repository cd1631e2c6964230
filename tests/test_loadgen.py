"""Load generator against the stub server (a calibration fake, named as such: a real engine cannot be made to be
slow, stall or fail on demand)."""

import asyncio

import numpy as np
import pytest

from infercost.engines import create_engine
from infercost.loadgen import LoadGenerator
from infercost.loadgen.stub_server import stub_server
from infercost.metrics import summarize
from infercost.spec.deployment import OpenAIDeployment
from infercost.spec.workload import Traffic
from infercost.workload.requests import Request

REQUESTS = [Request(id=f"q{i}", messages=[{"role": "user", "content": f"question {i}"}], max_tokens=4)
            for i in range(5)]


def run_load(base_url, traffic, requests=REQUESTS, timeout=30.0):
    async def go():
        deployment = OpenAIDeployment(engine="openai", model="stub", base_url=base_url, request_timeout_s=timeout)
        engine = create_engine(deployment)
        await engine.start()
        try:
            return await LoadGenerator(engine, requests, traffic).run()
        finally:
            await engine.stop()
    return asyncio.run(go())


def test_open_loop_keeps_sending_while_earlier_requests_are_slow():
    # Each request takes over 1 s; they are due every 100 ms. A closed loop (or coordinated omission) would send the
    # second request only after the first finished; the open loop must send each at its scheduled time.
    with stub_server(ttft_ms=1000, itl_ms=50, tokens=4) as url:
        records = run_load(url, Traffic(arrival="constant", rate=10, num_requests=10))
    measured = sorted(records, key=lambda r: r.index)
    assert all(r.ok for r in measured)
    lags = np.array([r.schedule_lag_s for r in measured])
    assert np.all(lags < 0.05), lags
    sends = np.array([r.sent_s for r in measured])
    assert np.allclose(np.diff(sends), 0.1, atol=0.05)
    # all ten were in flight at once: the last was sent before the first finished
    assert measured[-1].sent_s < measured[0].end_s
    s = summarize(records)
    assert s.latency["ttft_ms"].stats["p50"] == pytest.approx(1000, abs=150)


def test_closed_loop_never_exceeds_its_concurrency():
    with stub_server(ttft_ms=100, tokens=2) as url:
        records = run_load(url, Traffic(arrival="concurrency", concurrency=3, num_requests=12))
    assert len(records) == 12 and all(r.ok for r in records)
    events = sorted([(r.sent_s, 1) for r in records] + [(r.end_s, -1) for r in records], key=lambda e: (e[0], e[1]))
    in_flight = peak = 0
    for _, delta in events:
        in_flight += delta
        peak = max(peak, in_flight)
    assert peak == 3


def test_server_errors_and_stalls_are_recorded_per_request_and_the_run_goes_on():
    with stub_server(tokens=3, fail_every=3) as url:
        records = run_load(url, Traffic(arrival="constant", rate=50, num_requests=9))
    failed = [r for r in records if not r.ok]
    assert len(records) == 9 and len(failed) == 3
    assert all(r.http_status == 500 and "injected failure" in r.error for r in failed)
    assert summarize(records).error_rate == pytest.approx(1 / 3)

    with stub_server(tokens=3, stall_every=2) as url:
        records = run_load(url, Traffic(arrival="constant", rate=20, num_requests=4, request_timeout_s=1.0))
    stalled = [r for r in records if not r.ok]
    assert len(stalled) == 2 and all("timeout" in r.error for r in stalled)


def test_warmup_is_sent_first_and_flagged():
    with stub_server(tokens=2) as url:
        records = run_load(url, Traffic(arrival="constant", rate=50, num_requests=5, warmup_requests=2))
    assert sum(r.warmup for r in records) == 2
    assert summarize(records).requests == 5
    measured = [r for r in records if not r.warmup]
    assert min(r.index for r in measured) == 0 and measured[0].request_id == "q0"


def test_duration_bounds_an_open_loop_run():
    with stub_server(tokens=1) as url:
        records = run_load(url, Traffic(arrival="poisson", rate=20, duration_s=1.0, seed=3))
    assert 5 <= len(records) <= 45
    assert max(r.scheduled_s for r in records) <= 1.0


def test_token_counts_fall_back_when_the_server_sends_no_usage():
    # The stub always sends usage; the OpenAI engine must prefer it over counting chunks.
    with stub_server(tokens=5) as url:
        records = run_load(url, Traffic(arrival="constant", rate=50, num_requests=2))
    assert all(r.output_tokens == 4 and r.token_count_source == "usage" for r in records)  # max_tokens=4
