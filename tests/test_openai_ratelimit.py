"""A vendor's rate limit: HTTP 429s are resent after Retry-After (or a backoff), the wait counts in latency, and the
rate the engine was sending at when limited is recorded as the limit it met. The server is the stub (a fake): a real
vLLM server cannot be made to rate-limit on demand."""

import asyncio
import time

import pytest

from infercost.engines import Chunk, RequestFailed, create_engine
from infercost.loadgen.stub_server import stub_server
from infercost.spec.deployment import OpenAIDeployment
from infercost.workload.requests import Request

KEY_ENV = "INFERCOST_TEST_RATELIMIT_KEY"


def request(i: int) -> Request:
    return Request(id=str(i), prompt="hello", messages=None, max_tokens=2)


async def send(url: str, n: int, **fields):
    engine = create_engine(OpenAIDeployment(engine="openai", model="stub", base_url=url, **fields))
    await engine.start()

    async def one(i):
        t = time.perf_counter()
        try:
            chunks = [e async for e in engine.generate(request(i)) if isinstance(e, Chunk)]
            return len(chunks), time.perf_counter() - t, None
        except RequestFailed as exc:
            return 0, time.perf_counter() - t, exc

    try:
        results = await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await engine.stop()
    return engine, results


def test_429s_are_resent_and_the_limit_met_is_recorded():
    with stub_server(tokens=2, rate_limit_rps=5, retry_after_s=0.2) as url:
        engine, results = asyncio.run(send(url, 20, max_retries_429=20))
    assert all(err is None and chunks == 2 for chunks, _, err in results), results
    limit = engine.rate_limit()
    assert limit["responses_429"] >= 15 and limit["retries"] == limit["responses_429"] and limit["gave_up"] == 0
    # 20 sent at once: the stub accepts 5 in its first second, so the first 429 meets 5 accepted over the window's
    # 1 s floor
    assert limit["accepted_rps_at_first_429"] == pytest.approx(5, abs=1)
    assert limit["retry_after_s"] == pytest.approx(0.2)
    assert engine.describe()["rate_limited"] == limit
    # the last answers waited several Retry-After rounds: the wait is in their latency
    assert max(t for _, t, _ in results) >= 0.6


def test_a_request_still_limited_after_its_retries_fails_as_rate_limited():
    with stub_server(tokens=2, rate_limit_rps=1, retry_after_s=0.05) as url:
        engine, results = asyncio.run(send(url, 3, max_retries_429=0))
    failed = [err for _, _, err in results if err is not None]
    assert len(failed) == 2
    assert all(e.kind == "rate_limited" and e.status == 429 and str(e).startswith("HTTP 429 after 0 retries")
               for e in failed)
    assert engine.rate_limit()["gave_up"] == 2 and engine.rate_limit()["retries"] == 0


def test_retry_after_is_honoured_over_a_shorter_backoff():
    with stub_server(tokens=1, rate_limit_rps=1, retry_after_s=0.5) as url:
        _, results = asyncio.run(send(url, 2, max_retries_429=3, retry_backoff_s=0.001))
    assert all(err is None for _, _, err in results)
    assert max(t for _, t, _ in results) >= 0.5  # the limited one waited the server's Retry-After, not 1 ms


def test_the_key_never_reaches_a_failure_or_the_record(monkeypatch):
    key = "sk-ratelimit-" + "9" * 24
    monkeypatch.setenv(KEY_ENV, key)
    with stub_server(tokens=1, rate_limit_rps=1, retry_after_s=0.05) as url:
        engine, results = asyncio.run(send(url, 3, max_retries_429=0, api_key_env=KEY_ENV))
    assert key not in repr([str(e) for _, _, e in results]) and key not in repr(engine.describe())


def test_no_429_no_record():
    with stub_server(tokens=1) as url:
        engine, _ = asyncio.run(send(url, 3))
    assert engine.rate_limit() is None and "rate_limited" not in engine.describe()


def test_waits_are_capped_and_each_429_waits_its_own_retry_after():
    from infercost.engines.openai_engine import RateLimits

    assert all(RateLimits.wait_s(10, 5.0, None) <= 30.0 for _ in range(50))  # jitter never lifts it past 30 s
    assert RateLimits.wait_s(0, 1.0, 600.0) == 60.0 and RateLimits.wait_s(0, 1.0, -1.0) == 0.0
    limits = RateLimits()
    # a concurrent request's 429 without Retry-After does not take this one's away, nor the record's
    assert limits.limited("0.5") == 0.5 and limits.limited(None) is None and limits.limited("soon") is None
    assert limits.record()["retry_after_s"] == 0.5 and limits.record()["responses_429"] == 3
