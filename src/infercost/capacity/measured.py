"""Capacity measured on the engine at hand: one engine started once, one real run per probe, every probe's requests
kept under the capacity directory (`probes/<run>/`), and the result with its probe table in `capacity.json`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from infercost.capacity.guards import QueueGrowth, SloAlreadyLost, first_of
from infercost.capacity.result import CapacityOptions, CapacityResult, Probe, sample_rule
from infercost.capacity.result import load_capacity  # noqa: F401  (importable from here, where it was)
from infercost.capacity.search import search_capacity
from infercost.measure import EngineStartFailed, Progress, _quiet_stop, measure, start_engine
from infercost.metrics import RunSummary
from infercost.provenance import git_commit, hardware, library_versions, spec_hash
from infercost.redact import redacted_command
from infercost.spec.workload import Traffic, Workload
from infercost.store import RunStore
from infercost.store.runs import stored_path, utc_now
from infercost.workload import build_requests


class ProbeRunFailed(Exception):
    """A probe's run failed (server unreachable, every request failed, results unwritable): the search cannot go on,
    and a failed measurement must not read as "the SLO fails even at the lowest load"."""


class CapacityProgress(Progress):
    def probe_started(self, index: int, phase: str, load: float, mode: str, planned: int) -> None: ...
    def probe_done(self, probe: Probe) -> None: ...


def probe_workload(workload: Workload, options: CapacityOptions, load: float, requests: int, first: bool) -> Workload:
    """The workload with its traffic replaced by one probe's load. Open-loop probes keep the workload's arrival
    process (Poisson unless it says constant or gamma); warm-up runs before the first probe only (the engine stays
    up between probes)."""
    t = workload.traffic
    common = dict(request_timeout_s=t.request_timeout_s, seed=t.seed,
                  warmup_requests=t.warmup_requests if first else 0)
    if options.mode == "concurrency":
        users = int(load)
        traffic = Traffic(arrival="concurrency", concurrency=users, num_requests=max(requests, 3 * users), **common)
    else:
        arrival = t.arrival if t.arrival in ("poisson", "constant", "gamma") else "poisson"
        n = max(requests, math.ceil(load * options.min_duration_s))
        traffic = Traffic(arrival=arrival, rate=load, burstiness=t.burstiness, num_requests=n, **common)
    return workload.model_copy(update={"traffic": traffic})


def probe_from_summary(index: int, phase: str, load: float, summary: RunSummary | None, stopped: str | None,
                       run_dir: str | Path) -> Probe:
    if summary is None:
        return Probe(index=index, phase=phase, load=load, passed=False, reason="no summary", run_dir=str(run_dir))
    failed = [c for c in summary.slo_checks if not c.passed]
    reason = stopped
    if reason is None and failed:
        c = failed[0]
        observed = "none" if c.observed is None else f"{c.observed:.4g}"
        reason = f"{c.metric} {c.stat} {observed} > {c.bound:g}"
    observed = {f"{c.metric}.{c.stat}": c.observed for c in summary.slo_checks}
    e2e = summary.latency["e2e_ms"].stats.get("mean")
    unloaded = e2e is not None and load * e2e / 1e3 <= 1.0 if summary.completed else False
    return Probe(
        index=index, phase=phase, load=load, passed=bool(summary.slo_met) and stopped is None, reason=reason,
        requests=summary.requests, completed=summary.completed, error_rate=summary.error_rate,
        achieved_rps=summary.request_throughput_rps, output_tps=summary.output_token_throughput_tps,
        slo_observed=observed, stopped_early=stopped, unloaded=unloaded, run_dir=str(run_dir),
    )


async def measure_capacity(workload: Workload, deployment: Any, store: RunStore,
                           options: CapacityOptions | None = None,
                           progress: CapacityProgress | None = None) -> CapacityResult:
    options = options or CapacityOptions()
    progress = progress or CapacityProgress()
    per_probe, rule = sample_rule(options, workload.slo)
    w = json.loads(workload.model_dump_json())
    d = json.loads(deployment.model_dump_json())
    writer = store.new_run(f"{workload.name}-{deployment.label()}-capacity", {
        "kind": "capacity", "workload": w, "deployment": d, "options": options.model_dump(),
        "workload_hash": spec_hash(w), "deployment_hash": spec_hash(d), "tags": workload.tags.as_dict(),
        "versions": library_versions(), "hardware": hardware(), "git_commit": git_commit(Path(__file__).parent),
        "command": redacted_command(sys.argv),
    }, records="probes", summary_name="capacity.json")
    base = dict(workload=workload.name, deployment=deployment.label(), mode=options.mode,
                precision_asked=options.precision, requests_per_probe=per_probe, sample_rule=rule,
                tags=workload.tags.as_dict())
    try:
        engine, startup_s = await start_engine(deployment, writer.dir / "engine.log", progress,
                                               build_requests(workload))
    except EngineStartFailed as exc:
        result = CapacityResult(**base, status="infeasible", capacity_load=None, capacity_rps=None,
                                capacity_output_tps=None, failed_load=None, precision_reached=None, probes=[],
                                reason=exc.reason)
        writer.finish("infeasible", result.model_dump(mode="json"), reason=exc.reason,
                      engine=exc.engine_record(deployment))
        return result

    probe_store = RunStore(writer.dir / "probes")
    limit = options.max_in_flight or 4 * int(getattr(deployment, "max_num_seqs", 256) or 256)

    async def probe(load: float, phase: str, index: int) -> Probe:
        pw = probe_workload(workload, options, load, per_probe, first=index == 0)
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
        outcome = await search_capacity(probe, options)
        status = "completed"
    except ProbeRunFailed as exc:
        status = "failed"
        result = CapacityResult(**base, status="failed", capacity_load=None, capacity_rps=None,
                                capacity_output_tps=None, failed_load=None, precision_reached=None, probes=done,
                                reason=str(exc), provenance={"capacity_dir": str(writer.dir)})
        writer.finish("failed", _as_stored(result), reason=str(exc), engine=engine.describe(), startup_s=startup_s)
        await _quiet_stop(engine)
        return result
    finally:
        if status not in ("completed", "failed"):
            described = engine.describe()
            await _quiet_stop(engine)
            writer.finish(status, None, engine=described, startup_s=startup_s)
    described = engine.describe()
    await _quiet_stop(engine)
    best = next((p for p in reversed(outcome.probes) if p.passed and p.load == outcome.best), None)
    capacity_rps = None
    if best is not None:
        capacity_rps = best.load if options.mode == "rate" else best.achieved_rps
    result = CapacityResult(
        **base, status=outcome.status, capacity_load=outcome.best, capacity_rps=capacity_rps,
        capacity_output_tps=best.output_tps if best else None, failed_load=outcome.failed,
        precision_reached=outcome.precision, probes=outcome.probes,
        reason=_status_reason(outcome.status, options),
        provenance={"engine": described, "versions": writer.manifest["versions"],
                    "hardware": writer.manifest["hardware"], "measured_at": utc_now(),
                    "startup_s": startup_s, "capacity_dir": str(writer.dir)},
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
