"""The search itself, independent of how a probe is run (a measured run here, a simulation for projections): grow the
load geometrically until a probe fails, then bisect the bracket [highest pass, lowest fail] until it is within the
precision asked. It assumes that more load never makes latency better, which holds for a stable server in steady
state; each probe is kept, so a reader can see where noise made the bracket move. Noise near the edge is measured
rather than assumed away: `repeat_edges` re-runs the highest pass and the lowest fail, and `edges` reads the
verdict of every load from all of its runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from infercost.capacity.result import CapacityOptions, Probe

ProbeFn = Callable[[float, str, int], Awaitable[Probe]]  # (load, phase, index) -> probe


@dataclass
class SearchOutcome:
    status: str  # found | at_max | below_min | probe_limit
    best: float | None  # the search's highest passing load and lowest failing one (its first run's verdicts)
    failed: float | None
    probes: list[Probe] = field(default_factory=list)
    repeats: int = 1  # runs wanted at each edge (repeat_edges)

    @property
    def precision(self) -> float | None:
        if self.best is None or self.failed is None:
            return None
        return (self.failed - self.best) / self.best


async def search_capacity(probe: ProbeFn, options: CapacityOptions, growth: float = 2.0) -> SearchOutcome:
    """`growth`: the factor between loads while no bracket is found (2: doubling). A caller that knows roughly where
    the capacity lies (a projection's band end, near the central figure) starts there with a smaller factor, and
    brackets it in a few probes."""
    integer = options.mode == "concurrency"
    out = SearchOutcome("found", None, None)

    def done_bracket() -> bool:
        if out.best is None or out.failed is None:
            return False
        if integer:
            return out.failed - out.best <= 1
        return (out.failed - out.best) / out.best <= options.precision

    async def run(load: float, phase: str) -> bool:
        p = await probe(load, phase, len(out.probes))
        out.probes.append(p)
        if p.passed:
            out.best = load if out.best is None else max(out.best, load)
        else:
            out.failed = load if out.failed is None else min(out.failed, load)
        return p.passed

    load = options.start or 1.0
    if integer:
        load = max(1, round(load))
    if await run(load, "grow"):
        while out.failed is None:
            if load >= options.max_load:
                out.status = "at_max"
                return out
            if len(out.probes) >= options.max_probes:
                out.status = "probe_limit"
                return out
            load = min(load * growth, options.max_load)
            await run(load, "grow")
    else:
        while out.best is None:
            smaller = math.floor(load / growth) if integer else load / growth
            if out.probes[-1].unloaded:  # failing with no queue: less load cannot help
                out.status = "below_min"
                return out
            if smaller < max(options.min_load, 1 if integer else 0) or len(out.probes) >= options.max_probes:
                out.status = "below_min" if len(out.probes) < options.max_probes else "probe_limit"
                return out
            load = smaller
            await run(load, "shrink")

    while not done_bracket():
        if len(out.probes) >= options.max_probes:
            out.status = "probe_limit"
            return out
        mid = (out.best + out.failed) / 2
        if integer:
            mid = math.floor(mid)
        await run(mid, "bisect")
    return out


async def repeat_edges(probe: ProbeFn, out: SearchOutcome, repeats: int) -> SearchOutcome:
    """Re-run the edges the search found, the highest pass and then the lowest fail, until each has `repeats` runs
    (phase "repeat"). They do not move `best` or `failed`: `edges` reads the verdicts from all runs. This comes on
    top of the search's probe budget: at most 2 x (repeats - 1) more probes."""
    out.repeats = max(1, repeats)
    for edge in (out.best, out.failed):
        if edge is None:
            continue
        while sum(1 for p in out.probes if p.load == edge) < out.repeats:
            out.probes.append(await probe(edge, "repeat", len(out.probes)))
    return out


@dataclass
class Edges:
    """What every run at every load says together. `low` is the highest load at which every run passed, `high` the
    lowest load above it at which every run failed: the capacity lies in [low, high). `mixed` holds the loads whose
    runs disagree; `stable` is None without repeats."""

    low: float | None
    high: float | None
    mixed: list[float]
    stable: bool | None
    runs: dict[float, list[Probe]]


def edges(probes: list[Probe], repeats: int = 1) -> Edges:
    runs: dict[float, list[Probe]] = {}
    for p in probes:
        runs.setdefault(p.load, []).append(p)
    low = max((load for load, ps in runs.items() if all(p.passed for p in ps)), default=None)
    high = min((load for load, ps in runs.items() if not any(p.passed for p in ps) and (low is None or load > low)),
               default=None)
    mixed = sorted(load for load, ps in runs.items() if len({p.passed for p in ps}) > 1)
    return Edges(low, high, mixed, None if repeats <= 1 else not mixed, runs)
