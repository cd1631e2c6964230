"""Capacity measured on the engine at hand: one engine started once, one real run per probe, every probe's requests
kept under the capacity directory (`probes/<run>/`), and the result with its probe table in `capacity.json`. With
repeats, the edges' re-runs are probes like the others (phase "repeat")."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from infercost.capacity.guards import QueueGrowth, SloAlreadyLost, first_of
from infercost.capacity.probes import capacity_found, no_capacity, probe_from_summary
from infercost.capacity.result import CapacityOptions, CapacityResult, Probe, sample_rule
from infercost.capacity.result import load_capacity  # noqa: F401  (importable from here, where it was)
from infercost.capacity.search import repeat_edges, search_capacity
from infercost.measure import EngineStartFailed, Progress, quiet_stop, measure, start_engine
from infercost.workload.requests import load_trace
from infercost.spec.workload import TraceSpec, Traffic, Workload
from infercost.store import RunStore
from infercost.store.manifest import run_manifest
from infercost.store.runs import stored_path, utc_now
from infercost.workload import build_requests

if TYPE_CHECKING:
    from infercost.spec.deployment import Deployment


class ProbeRunFailed(Exception):
    """A probe's run failed (server unreachable, every request failed, results unwritable): the search cannot go on,
    and a failed measurement must not read as "the SLO fails even at the lowest load"."""


class CapacityProgress(Progress):
    def probe_started(self, index: int, phase: str, load: float, mode: str, planned: int) -> None: ...
    def probe_done(self, probe: Probe) -> None: ...


def probe_workload(workload: Workload, options: CapacityOptions, load: float, requests: int, first: bool,
                   run: int = 0) -> Workload:
    """The workload with its traffic replaced by one probe's load. Open-loop probes keep the workload's arrival
    process (Poisson unless it says constant or gamma); warm-up runs before the first probe only (the engine stays
    up between probes). The `run`-th repeat at a load draws its arrivals and prompts with the workload's seed + run,
    so repeats see the noise of a different draw as well as the machine's."""
    t = workload.traffic
    common = dict(request_timeout_s=t.request_timeout_s, seed=t.seed + run,
                  warmup_requests=t.warmup_requests if first else 0)
    if options.mode == "concurrency":
        users = int(load)
        traffic = Traffic(arrival="concurrency", concurrency=users, num_requests=max(requests, 3 * users), **common)
    elif t.arrival == "trace":
        traffic = t.model_copy(update={**common, "trace": traced_probe(workload, load, requests, options)})
    else:
        arrival = t.arrival if t.arrival in ("poisson", "constant", "gamma") else "poisson"
        n = max(requests, math.ceil(load * options.min_duration_s))
        traffic = Traffic(arrival=arrival, rate=load, burstiness=t.burstiness, num_requests=n, **common)
    return workload.model_copy(update={"traffic": traffic})


def traced_probe(workload: Workload, load: float, requests: int, options: CapacityOptions) -> TraceSpec:
    """A trace probed at `load` req/s: the same window compressed in time (speed x load / the window's rate), not
    Poisson arrivals, so bursts and lulls stay the trace's. The window is cut to the requests the probe needs."""
    spec = workload.traffic.trace
    traced = load_trace(workload)
    rate_at_speed_1 = (traced.mean_rate() or 1.0) / spec.speed
    n = max(requests, math.ceil(load * options.min_duration_s))
    length = n / rate_at_speed_1
    return spec.model_copy(update={"speed": load / rate_at_speed_1,
                                   "duration_s": min(spec.duration_s or math.inf, length)})


async def measure_capacity(workload: Workload, deployment: Deployment, store: RunStore,
                           options: CapacityOptions | None = None,
                           progress: CapacityProgress | None = None) -> CapacityResult:
    options = options or CapacityOptions()
    progress = progress or CapacityProgress()
    per_probe, rule = sample_rule(options, workload.slo)
    writer = store.new_run(f"{workload.name}-{deployment.label()}-capacity",
                           run_manifest("capacity", workload, deployment, options=options.model_dump()),
                           records="probes", summary_name="capacity.json")
    base = dict(workload=workload.name, deployment=deployment.label(), mode=options.mode,
                precision_asked=options.precision, requests_per_probe=per_probe, sample_rule=rule,
                tags=workload.tags.as_dict())
    try:
        engine, startup_s = await start_engine(deployment, writer.dir / "engine.log", progress,
                                               build_requests(workload))
    except EngineStartFailed as exc:
        result = no_capacity("infeasible", exc.reason, **base)
        writer.finish("infeasible", result.model_dump(mode="json"), reason=exc.reason,
                      engine=exc.engine_record(deployment))
        return result

    probe_store = RunStore(writer.dir / "probes")
    limit = options.max_in_flight or 4 * int(getattr(deployment, "max_num_seqs", 256) or 256)

    async def probe(load: float, phase: str, index: int) -> Probe:
        pw = probe_workload(workload, options, load, per_probe, first=index == 0,
                            run=sum(1 for p in done if p.load == load))
        planned = pw.traffic.num_requests
        progress.probe_started(index, phase, load, options.mode, planned)
        guard = first_of(SloAlreadyLost(workload.slo, planned), QueueGrowth(limit))
        unit = "users" if options.mode == "concurrency" else "rps"
        m = await measure(pw, deployment, probe_store, progress, engine=engine, stop_check=guard,
                          run_name=f"probe{index:02d}-{load:g}{unit}")
        p = probe_from_summary(index, phase, load, m.summary, m.stopped_early, stored_path(m.run_dir, writer.dir))
        if m.status == "failed":
            p = p.model_copy(update={"passed": False, "reason": f"run failed: {m.reason}"})
        writer.add(p.model_dump(mode="json"))
        progress.probe_done(p)
        done.append(p)
        if m.status == "failed":
            raise ProbeRunFailed(f"probe {index} at {load:g} {unit} failed: {m.reason}")
        return p

    done: list[Probe] = []
    status = "interrupted"
    try:
        outcome = await repeat_edges(probe, await search_capacity(probe, options), options.repeats)
        status = "completed"
    except ProbeRunFailed as exc:
        status = "failed"
        result = no_capacity("failed", str(exc), done, **base, provenance={"capacity_dir": str(writer.dir)})
        writer.finish("failed", _as_stored(result), reason=str(exc), engine=engine.describe(), startup_s=startup_s)
        await quiet_stop(engine)
        return result
    finally:
        if status not in ("completed", "failed"):
            described = engine.describe()
            await quiet_stop(engine)
            writer.finish(status, None, engine=described, startup_s=startup_s)
    described = engine.describe()
    await quiet_stop(engine)
    manifest = writer.manifest
    result = capacity_found(
        outcome, **base, reason=_status_reason(outcome.status, options),
        provenance={"engine": described, "versions": manifest.versions, "hardware": manifest.hardware,
                    "measured_at": utc_now(), "startup_s": startup_s, "capacity_dir": str(writer.dir)},
    )
    writer.finish("completed", _as_stored(result), engine=described, startup_s=startup_s)
    return result


def _as_stored(result: CapacityResult) -> dict[str, Any]:
    """capacity.json names its own directory as "." (paths in it are relative to it), so the folder can move."""
    data = result.model_dump(mode="json")
    data["provenance"]["capacity_dir"] = "."
    return data


def _status_reason(status: str, options: CapacityOptions) -> str | None:
    return {
        "at_max": f"every probe passed up to max_load {options.max_load:g}: capacity is at least that",
        "below_min": "the SLO fails even at the lowest load tried: with about one request in the system at a "
                     "time (no queueing left to remove) or below min_load",
        "probe_limit": f"stopped after {options.max_probes} probes before reaching the precision asked",
    }.get(status)
