"""The load generator's timing error: against the stub server (a calibration fake: fixed, known timings) its TTFT
and ITL error against known values. Its sustainable rate is measured beside vLLM's client in test_loadgen_ceiling.py.

Run: make bench   (figures are in the benchmark JSON's extra_info and printed)"""

import asyncio

import numpy as np

from infercost.engines import create_engine
from infercost.loadgen import LoadGenerator
from infercost.loadgen.stub_server import stub_server
from infercost.metrics import summarize
from infercost.spec.deployment import OpenAIDeployment
from infercost.spec.workload import Traffic
from infercost.workload.requests import Request

REQUESTS = [Request(id=f"q{i}", prompt=f"p{i}", max_tokens=2) for i in range(16)]


async def _run(url, traffic):
    engine = create_engine(OpenAIDeployment(engine="openai", model="stub", base_url=url))
    await engine.start()
    try:
        return await LoadGenerator(engine, REQUESTS, traffic).run()
    finally:
        await engine.stop()


def timing_error(url_ttft_ms, url, n=60):
    records = asyncio.run(_run(url, Traffic(arrival="constant", rate=20, num_requests=n)))
    s = summarize(records)
    ttft = np.array([(r.first_token_s - r.sent_s) * 1e3 for r in records])
    return ttft - url_ttft_ms, s


def test_ttft_and_itl_error_against_known_timings(benchmark):
    ttft_ms, itl_ms = 100.0, 10.0
    with stub_server(ttft_ms=ttft_ms, itl_ms=itl_ms, tokens=8) as url:
        errors, s = benchmark.pedantic(timing_error, args=(ttft_ms, url), rounds=1, iterations=1)
    itl_err = s.latency["itl_ms"].stats["p50"] - itl_ms
    benchmark.extra_info.update(ttft_error_ms_median=round(float(np.median(errors)), 3),
                                ttft_error_ms_p99=round(float(np.percentile(errors, 99)), 3),
                                itl_error_ms_median=round(itl_err, 3))
    print(f"\nTTFT error vs a known {ttft_ms:.0f} ms: median {np.median(errors):.2f} ms, "
          f"p99 {np.percentile(errors, 99):.2f} ms; ITL error vs {itl_ms:.0f} ms: median {itl_err:.2f} ms")
    # The measured TTFT includes the stub's own sleep overshoot and loopback HTTP: never less than the truth,
    # and within a few ms of it.
    assert np.median(errors) >= -0.5
    assert np.median(errors) < 10
