"""Measure one workload on one deployment: start the engine (timed on its own), replay the load, store every record
as it arrives, summarise. A deployment that cannot start is a result (status `infeasible` with the engine's
reason), not a crash; so is a run that fails once started (status `failed` with the reason): every request failed,
the server became unreachable, the results could not be written, or the load generator itself broke. Repeated
replays (`measure_repeated`) start the engine once and pool the replays into one run holding each of them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from infercost.engines import Engine, create_engine
from infercost.engines.memory import InsufficientMemory
from infercost.errors import InputError
from infercost.loadgen import LoadGenerator, RequestRecord
from infercost.metrics import RunSummary, summarize
from infercost.metrics.intervals import spread
from infercost.metrics.memory import MemorySampler
from infercost.redact import redact_text
from infercost.spec.workload import SessionPrompts, SyntheticPrompts, TracePrompts, Workload
from infercost.store import RunStore, RunWriter
from infercost.store.manifest import run_manifest
from infercost.store.runs import ResultsWriteError, stored_path
from infercost.workload import build_requests
from infercost.workload.requests import Request

if TYPE_CHECKING:
    from infercost.spec.deployment import Deployment


@dataclass
class Measurement:
    run_dir: Path
    # completed | failed (started, then failed: the reason says why) | infeasible (could not start here) |
    # interrupted
    status: str
    summary: RunSummary | None
    startup_s: float | None
    reason: str | None = None
    stopped_early: str | None = None  # why the load stopped before its plan (a capacity probe's guard, an abort)
    error_limit_exceeded: bool = False  # more requests failed than the workload's slo.max_error_rate allows
    records: list[RequestRecord] | None = field(default=None, repr=False)  # this replay's, in memory


class Progress:
    """Hooks a caller can implement to show progress; all optional."""

    def engine_starting(self, deployment: Deployment) -> None: ...
    def engine_started(self, seconds: float) -> None: ...
    def run_started(self, planned: int | None) -> None: ...
    def request_done(self, record: RequestRecord) -> None: ...


def memory_figures(engine: dict[str, Any], sampler: MemorySampler) -> dict[str, Any]:
    """Weights and KV cache as the engine reports them; peaks as sampled over this process and its children (for an
    HTTP engine that is the client only: the server's memory is its own)."""
    keys = ("weights_bytes", "weights_bytes_source", "kv_cache_bytes", "kv_cache_tokens", "cuda_max_allocated_bytes")
    out = {k: engine[k] for k in keys if engine.get(k) is not None}
    if "weights_bytes" in out:
        out.setdefault("weights_bytes_source", "measured by the engine after loading")
    out["peak_rss_bytes"] = sampler.peak_rss_bytes
    out["peak_rss_scope"] = "client process only" if engine.get("engine") == "openai" else "engine process tree"
    if sampler.peak_gpu_bytes is not None:
        out["peak_gpu_used_bytes"] = sampler.peak_gpu_bytes
    return out


def check_runnable(workload: Workload, deployment: Deployment, source: str | None = None) -> None:
    """What can be known to fail before a run directory exists or an engine starts: a synthetic workload is sized
    in tokens, so an `openai` deployment needs a tokenizer to count them (the server cannot be asked)."""
    if (isinstance(workload.prompts, SyntheticPrompts) and getattr(deployment, "engine", None) == "openai"
            and not getattr(deployment, "tokenizer", None)):
        raise InputError(f"workload '{workload.name}' has synthetic prompts, sized in tokens: expected a tokenizer "
                         "(an alias or directory of the served model's tokenizer) to count them",
                         source=source or "deployment", field="tokenizer")


def _token_counter(engine: Engine, workload: Workload) -> Any:
    if engine.count_tokens("a b") is None:
        raise InputError(f"workload '{workload.name}' has synthetic prompts, sized in tokens, but the "
                         f"{engine.name} engine has no tokenizer to count them: expected `tokenizer` in the deployment",
                         source="deployment", field="tokenizer")
    return engine.count_tokens


def _verdict(generator: LoadGenerator, summary: RunSummary) -> tuple[str, str | None]:
    """A run that measured nothing it was asked to is `failed`, with the reason; else `completed`."""
    if generator.abort_reason:
        return "failed", generator.abort_reason
    if summary.requests and not summary.completed and generator.stopped_reason is None:
        top = max(summary.errors.items(), key=lambda kv: kv[1]) if summary.errors else ("unknown", summary.requests)
        return "failed", f"all {summary.requests} requests failed ({top[1]} × {top[0]})"
    return "completed", None


def error_limit(summary: RunSummary | None, workload: Workload) -> dict[str, Any] | None:
    """The workload's error limit (slo.max_error_rate) against the run's error rate."""
    if summary is None or not summary.requests:
        return None
    bound = workload.slo.max_error_rate
    return {"max_error_rate": bound, "error_rate": summary.error_rate, "exceeded": summary.error_rate > bound}


class EngineStartFailed(Exception):
    """The deployment cannot run here (OOM, unsupported option, crash at start): an infeasible result."""

    def __init__(self, reason: str, memory_plan: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.memory_plan = memory_plan

    def engine_record(self, deployment: Deployment) -> dict[str, Any]:
        return {"engine": deployment.engine, "memory_plan": self.memory_plan}


async def start_engine(deployment: Deployment, log_path: Path, progress: Progress | None = None,
                       requests: Sequence[Request] = ()) -> tuple[Engine, float]:
    """Create and start the deployment's engine, timing the start on its own. Its memory is sized for `requests`
    and checked first: a deployment that cannot fit fails here in one line, with no engine started. Input errors
    propagate; any other failure becomes EngineStartFailed with the engine's reason (and the verdict goes into the
    capability table)."""
    progress = progress or Progress()
    engine = create_engine(deployment)
    engine.log_path = log_path
    try:
        engine.plan_memory(requests)
    except InsufficientMemory as exc:
        raise EngineStartFailed(str(exc), exc.plan.model_dump()) from None
    progress.engine_starting(deployment)
    t = time.perf_counter()
    try:
        await engine.start()
    except InputError:
        await quiet_stop(engine)
        raise
    except Exception as exc:  # OOM, unsupported option, crash: the configuration is infeasible here
        reason = redact_text(f"engine failed to start: {str(exc).strip()[:800]}", engine.secrets())
        _record_verdict(deployment, f"no: {reason}")
        await quiet_stop(engine)
        plan = engine.memory_plan.model_dump() if engine.memory_plan is not None else None
        raise EngineStartFailed(reason, plan) from exc
    startup_s = time.perf_counter() - t
    progress.engine_started(startup_s)
    _record_verdict(deployment, "yes (started here)")
    return engine, startup_s


async def measure(
    workload: Workload,
    deployment: Deployment,
    store: RunStore,
    progress: Progress | None = None,
    engine: Engine | None = None,
    stop_check: Any = None,
    run_name: str | None = None,
) -> Measurement:
    """Run `workload` against `deployment`. Pass a started `engine` to reuse it (its start-up is then not timed);
    `stop_check` may end the load early (see LoadGenerator). An engine started here is always stopped (its HTTP
    session closed), whatever happens."""
    progress = progress or Progress()
    check_runnable(workload, deployment)
    requests = build_requests(workload)  # bad prompt files fail here, before any engine starts
    writer = store.new_run(run_name or f"{workload.name}-{deployment.label()}",
                           run_manifest("measured", workload, deployment))

    owns_engine = engine is None
    startup_s = None
    if owns_engine:
        started = await _start_for(writer, deployment, progress, requests)
        if isinstance(started, Measurement):
            return started
        engine, startup_s = started
    try:
        return await _replay(workload, engine, requests, writer, progress, stop_check, startup_s)
    finally:
        if owns_engine:
            await quiet_stop(engine)


async def _start_for(writer: RunWriter, deployment: Deployment, progress: Progress,
                     requests: list[Request]) -> tuple[Engine, float] | Measurement:
    """Start the run's engine; a start that cannot happen here is the run's recorded result (infeasible), and bad
    input fails the run and is raised."""
    try:
        return await start_engine(deployment, writer.dir / "engine.log", progress, requests)
    except InputError as exc:
        writer.finish("failed", None, reason=str(exc))
        raise
    except EngineStartFailed as exc:
        writer.finish("infeasible", None, reason=exc.reason, engine=exc.engine_record(deployment))
        return Measurement(writer.dir, "infeasible", None, None, exc.reason)


async def _replay(workload: Workload, engine: Engine, requests: list[Request], writer: RunWriter, progress: Progress,
                  stop_check: Any, startup_s: float | None) -> Measurement:
    src = workload.prompts
    if isinstance(src, (SyntheticPrompts, TracePrompts)) or (isinstance(src, SessionPrompts) and src.synthetic):
        try:  # exact token lengths with the real tokenizer
            requests = build_requests(workload, _token_counter(engine, workload))
        except InputError as exc:
            writer.finish("failed", None, reason=str(exc))
            raise

    def sink(record: RequestRecord) -> None:
        writer.add(record)  # raises when the disk is full or read-only: the generator then stops the load
        progress.request_done(record)

    generator = LoadGenerator(engine, requests, workload.traffic, sink=sink, stop_check=stop_check)
    progress.run_started(generator.planned_requests())
    status, reason = "completed", None
    sampler = MemorySampler()
    summary: RunSummary | None = None
    try:
        async with sampler:
            await generator.run()
    except asyncio.CancelledError:
        status = "interrupted"
    except (KeyboardInterrupt, SystemExit):  # SIGTERM ends a command like Ctrl-C: record it, then go on ending
        status = "interrupted"
        raise
    except Exception as exc:  # the load generator or engine broke mid-run: a failed run, what it measured is kept
        status, reason = "failed", redact_text(f"the run stopped: {type(exc).__name__}: {exc}", engine.secrets())
    finally:
        summary = summarize(generator.records, workload.slo)
        try:
            described = engine.describe()
        except Exception as exc:  # describing must not cost the run its results
            described = {"engine": getattr(engine, "name", "?"), "describe_error": f"{type(exc).__name__}: {exc}"}
        summary.memory = memory_figures(described, sampler)
        if status == "completed":
            status, reason = _verdict(generator, summary)
        limit = error_limit(summary, workload)
        fields: dict[str, Any] = dict(
            engine=described, memory=summary.memory, startup_s=startup_s,
            run_started_at_unix=generator.started_wall,
            stopped_early=None if generator.abort_reason else generator.stopped_reason,
            error_limit=limit,
        )
        if (reuse := generator.prompt_reuse()) is not None:  # said, never silent: repeats flatter a prefix cache
            fields["prompt_reuse"] = reuse
        if reason:
            fields["reason"] = reason
        try:
            status = writer.finish(status, summary.model_dump(mode="json"), **fields)
            reason = writer.manifest.reason or reason
        except ResultsWriteError as exc:  # not even the manifest could be written: say so, keep what is on disk
            status, reason = "failed", f"writing results failed: {exc.strerror or exc}"
    if status == "interrupted":
        raise KeyboardInterrupt
    return Measurement(writer.dir, status, summary, startup_s, reason=reason, stopped_early=generator.stopped_reason,
                       error_limit_exceeded=bool(limit and limit["exceeded"]), records=list(generator.records))


def _record_verdict(deployment: Deployment, verdict: str) -> None:
    """What a real start said about a vLLM quantisation method goes into the capability table."""
    if deployment.engine == "vllm" and deployment.quantization:
        from infercost.engines.capabilities import record_vllm_verdict

        record_vllm_verdict(deployment.quantization, verdict)


async def quiet_stop(engine: Engine) -> None:
    try:
        await engine.stop()
    except Exception:
        pass


def measure_sync(workload: Workload, deployment: Deployment, store: RunStore, progress: Progress | None = None,
                 repeats: int = 1) -> Measurement:
    if repeats > 1:
        return asyncio.run(measure_repeated(workload, deployment, store, repeats, progress))
    return asyncio.run(measure(workload, deployment, store, progress))


# ------------------------------------------------------------------ repeated replays

REPEAT_FIGURES = {  # what each replay reports, and whose spread across replays is given
    "request_throughput_rps": lambda s: s.request_throughput_rps,
    "output_token_throughput_tps": lambda s: s.output_token_throughput_tps,
    "ttft_ms.p50": lambda s: s.latency["ttft_ms"].stats.get("p50"),
    "ttft_ms.p95": lambda s: s.latency["ttft_ms"].stats.get("p95"),
    "tpot_ms.p50": lambda s: s.latency["tpot_ms"].stats.get("p50"),
    "tpot_ms.p95": lambda s: s.latency["tpot_ms"].stats.get("p95"),
    "e2e_ms.p95": lambda s: s.latency["e2e_ms"].stats.get("p95"),
    "goodput_rps": lambda s: s.goodput_rps,
}
REPEAT_WARMUP = "first replay only: the engine stays up and warm between replays"


def replay_workload(workload: Workload, index: int) -> Workload:
    """The `index`-th replay (from 0): the workload's seed + index draws its arrivals and prompts, so replays show the
    noise of a different draw as well as the machine's; warm-up requests go before the first replay only."""
    t = workload.traffic
    update: dict[str, Any] = {"seed": t.seed + index}
    if index:
        update["warmup_requests"] = 0
    return workload.model_copy(update={"traffic": t.model_copy(update=update)})


def end_to_end(replays: Sequence[Sequence[RequestRecord]]) -> list[RequestRecord]:
    """The replays' measured records (warm-up left out) on one timeline, each replay starting where the one before
    ended, so that the pooled run's duration is the sum of theirs and its rates are the pooled requests over that
    time. Latencies are differences of times within a request: they do not change."""
    out: list[RequestRecord] = []
    offset = 0.0
    for records in replays:
        records = [r for r in records if not r.warmup]
        times = [t for r in records for t in (r.sent_s, r.end_s) if t is not None]
        if not times:
            continue
        shift = offset - min(times)

        def moved(t: float | None) -> float | None:
            return None if t is None else t + shift

        for r in records:
            out.append(replace(r, scheduled_s=moved(r.scheduled_s), sent_s=moved(r.sent_s),
                               first_token_s=moved(r.first_token_s), end_s=moved(r.end_s),
                               token_times_s=[t + shift for t in r.token_times_s]))
        offset += max(times) - min(times)
    return out


def pooled_summary(replays: Sequence[Measurement], workload: Workload, base: str | Path) -> RunSummary:
    """One summary over every replay: latency distributions, their intervals and the SLO verdict from all records
    pooled; throughputs and goodput the mean of the replays'; `repeats` with each replay's figures and their
    spread."""
    done = [m for m in replays if m.summary is not None]
    pooled = summarize(end_to_end([m.records or [] for m in done]), workload.slo)
    summaries = [m.summary for m in done if m.summary.requests]

    def mean(values: list[float | None]) -> float | None:
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    update: dict[str, Any] = {}
    if summaries:
        for name in ("request_throughput_rps", "output_token_throughput_tps", "total_token_throughput_tps"):
            update[name] = mean([getattr(s, name) for s in summaries])
        update["goodput_rps"] = mean([s.goodput_rps for s in summaries]) if pooled.goodput_rps is not None else None
    memories = [m.summary.memory for m in done if m.summary.memory]
    if memories:
        memory = dict(memories[-1])
        for key in ("peak_rss_bytes", "peak_gpu_used_bytes"):
            peaks = [mem[key] for mem in memories if mem.get(key) is not None]
            if peaks:
                memory[key] = max(peaks)
        update["memory"] = memory
    runs = []
    for m in replays:
        row: dict[str, Any] = {"run_dir": stored_path(m.run_dir, base), "status": m.status}
        if m.summary is not None:
            row.update({k: f(m.summary) for k, f in REPEAT_FIGURES.items()})
            row["slo_met"] = m.summary.slo_met
        runs.append(row)
    update["repeats"] = {
        "n": len(replays), "warmup": REPEAT_WARMUP, "runs": runs,
        "spread": {k: spread([f(m.summary) for m in done]) for k, f in REPEAT_FIGURES.items()},
    }
    return pooled.model_copy(update=update)


async def measure_repeated(workload: Workload, deployment: Deployment, store: RunStore, repeats: int,
                           progress: Progress | None = None) -> Measurement:
    """Start the engine once and replay the workload `repeats` times. The run directory holds `replays/<run>` (each
    a complete run), replays.jsonl (one row per replay) and summary.json: the replays pooled, with their spread under
    `repeats`. The run is failed as soon as one replay fails (what was measured is kept and summarised)."""
    progress = progress or Progress()
    check_runnable(workload, deployment)
    requests = build_requests(workload)
    writer = store.new_run(f"{workload.name}-{deployment.label()}-x{repeats}",
                           run_manifest("measured", workload, deployment), records="replays",
                           summary_name="summary.json")
    writer.update(repeats=repeats)
    started = await _start_for(writer, deployment, progress, requests)
    if isinstance(started, Measurement):
        return started
    engine, startup_s = started

    replay_store = RunStore(writer.dir / "replays")
    replays: list[Measurement] = []
    status: str = "interrupted"
    described: dict[str, Any] = {}
    try:
        for i in range(repeats):
            m = await measure(replay_workload(workload, i), deployment, replay_store, progress, engine=engine,
                              run_name=f"replay{i + 1:02d}")
            replays.append(m)
            writer.add({"replay": i + 1, "run_dir": stored_path(m.run_dir, writer.dir), "status": m.status,
                        "reason": m.reason})
            if m.status != "completed":
                break
        status = "completed"
    finally:
        try:
            described = engine.describe()
        except Exception as exc:
            described = {"engine": getattr(engine, "name", "?"), "describe_error": f"{type(exc).__name__}: {exc}"}
        await quiet_stop(engine)
        if status != "completed":
            writer.finish(status, None, engine=described, startup_s=startup_s,
                          replays=[stored_path(m.run_dir, writer.dir) for m in replays])
    reason = None
    broken = next((m for m in replays if m.status != "completed"), None)
    if broken is not None:
        status = "failed"
        reason = f"replay {replays.index(broken) + 1} of {repeats} {broken.status}: {broken.reason}"
    summary = pooled_summary(replays, workload, writer.dir)
    limit = error_limit(summary, workload)
    fields: dict[str, Any] = dict(engine=described, memory=summary.memory, startup_s=startup_s, error_limit=limit,
                                  replays=[stored_path(m.run_dir, writer.dir) for m in replays])
    if reason:
        fields["reason"] = reason
    try:
        status = writer.finish(status, summary.model_dump(mode="json"), **fields)
        reason = writer.manifest.reason or reason
    except ResultsWriteError as exc:
        status, reason = "failed", f"writing results failed: {exc.strerror or exc}"
    return Measurement(writer.dir, status, summary, startup_s, reason=reason,
                       error_limit_exceeded=bool(limit and limit["exceeded"]))


__all__ = ["EngineStartFailed", "Measurement", "Progress", "check_runnable", "error_limit", "measure",
           "measure_repeated", "measure_sync", "start_engine"]
