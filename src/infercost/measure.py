"""Measure one workload on one deployment: start the engine (timed on its own), replay the load, store every record
as it arrives, summarise. A deployment that cannot start is a result (status `infeasible` with the engine's
reason), not a crash; so is a run that fails once started (status `failed` with the reason): every request failed,
the server became unreachable, the results could not be written, or the load generator itself broke."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from infercost.engines import Engine, create_engine
from infercost.engines.memory import InsufficientMemory
from infercost.errors import InputError
from infercost.loadgen import LoadGenerator, RequestRecord
from infercost.metrics import RunSummary, summarize
from infercost.metrics.memory import MemorySampler
from infercost.redact import redact_text
from infercost.spec.workload import SyntheticPrompts, Workload
from infercost.store import RunStore, RunWriter
from infercost.store.manifest import run_manifest
from infercost.store.runs import ResultsWriteError
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
        try:
            engine, startup_s = await start_engine(deployment, writer.dir / "engine.log", progress, requests)
        except InputError as exc:
            writer.finish("failed", None, reason=str(exc))
            raise
        except EngineStartFailed as exc:
            writer.finish("infeasible", None, reason=exc.reason, engine=exc.engine_record(deployment))
            return Measurement(writer.dir, "infeasible", None, None, exc.reason)
    try:
        return await _replay(workload, engine, requests, writer, progress, stop_check, startup_s)
    finally:
        if owns_engine:
            await quiet_stop(engine)


async def _replay(workload: Workload, engine: Engine, requests: list[Request], writer: RunWriter, progress: Progress,
                  stop_check: Any, startup_s: float | None) -> Measurement:
    if isinstance(workload.prompts, SyntheticPrompts):
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
                       error_limit_exceeded=bool(limit and limit["exceeded"]))


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
                 ) -> Measurement:
    return asyncio.run(measure(workload, deployment, store, progress))


__all__ = ["EngineStartFailed", "Measurement", "Progress", "check_runnable", "error_limit", "measure", "measure_sync",
           "start_engine"]
