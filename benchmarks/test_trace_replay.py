"""Trace replay fidelity: a 10-minute window of a trace at about 20 req/s (bursty: the rate swings between 10 and 30
req/s, with bursts of several requests within a second) replayed against the no-op server (nginx where installed,
else an asyncio server, answering at once in its own process), so what is measured is the sender: how late each
request goes out against its traced offset.

Reported: schedule lag p50/p99/max and the share of requests sent within 1 ms of their traced offset. Asserted:
lag p99 <= 5 ms and at least 95% within 1 ms (the shared machine's noise gets the rest). The trace is written here
in the Azure layout and read through the same reader as any user's trace.

Run: .venv/bin/python -m pytest benchmarks/test_trace_replay.py -q -s -p no:cacheprovider
     (INFERCOST_BENCH_TRACE_S=60 for a one-minute window)"""

from __future__ import annotations

import asyncio
import math
import os
import random
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from noop_server import noop_server  # noqa: E402

WINDOW_S = float(os.environ.get("INFERCOST_BENCH_TRACE_S", "600"))
MEAN_RPS = 20.0
LAG_P99_MS, WITHIN_1MS = 5.0, 0.95


def write_trace(path: Path, seconds: float, seed: int = 0) -> int:
    """An Azure-layout trace: Poisson arrivals whose rate swings 10-30 req/s over two minutes, plus bursts."""
    rng = random.Random(seed)
    t, rows = 0.0, []
    while t < seconds:
        rate = MEAN_RPS * (1 + 0.5 * math.sin(2 * math.pi * t / 120))
        if rng.random() < 0.02:
            rows += [t + rng.random() * 0.5 for _ in range(rng.randint(3, 8))]
        t += rng.expovariate(rate)
        rows.append(t)
    rows = sorted(x for x in rows if x < seconds)
    with path.open("w") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for x in rows:
            day, rest = divmod(x, 86400)
            h, rest = divmod(rest, 3600)
            m, s = divmod(rest, 60)
            f.write(f"2024-05-{10 + int(day):02d} {int(h):02d}:{int(m):02d}:{s:010.7f},{rng.randint(16, 96)},"
                    f"{rng.randint(2, 8)}\n")
    return len(rows)


def replay(url: str, trace: Path):
    from infercost.engines import create_engine
    from infercost.loadgen import LoadGenerator
    from infercost.spec.deployment import OpenAIDeployment
    from infercost.spec.workload import Workload
    from infercost.workload.requests import build_requests

    w = Workload.model_validate({"name": "fidelity", "api": "completion",
                                 "traffic": {"arrival": "trace", "trace": {"path": str(trace), "format": "azure"}}})

    async def go():
        engine = create_engine(OpenAIDeployment(engine="openai", model="noop", base_url=url))
        await engine.start()
        try:
            return await LoadGenerator(engine, build_requests(w), w.traffic).run()
        finally:
            await engine.stop()

    return asyncio.run(go())


def test_trace_replay_fidelity(benchmark, tmp_path):
    trace = tmp_path / "trace.csv"
    rows = write_trace(trace, WINDOW_S)
    with noop_server() as server:
        records = benchmark.pedantic(replay, args=(server["url"], trace), rounds=1, iterations=1)
    lag_ms = np.array([(r.sent_s - r.scheduled_s) * 1e3 for r in records if r.sent_s is not None])
    figures = {
        "server": server["kind"], "window_s": WINDOW_S, "requests": len(records), "trace_rows": rows,
        "mean_rate_rps": rows / WINDOW_S, "completed": sum(r.ok for r in records),
        "lag_p50_ms": float(np.percentile(lag_ms, 50)), "lag_p99_ms": float(np.percentile(lag_ms, 99)),
        "lag_max_ms": float(lag_ms.max()), "within_1ms": float((lag_ms <= 1.0).mean()),
    }
    benchmark.extra_info.update(figures)
    print("\ntrace replay fidelity:", figures)
    assert figures["requests"] == rows and figures["completed"] == rows
    assert figures["lag_p99_ms"] <= LAG_P99_MS and figures["within_1ms"] >= WITHIN_1MS, figures
