"""What a capacity search is asked and what it answers: the capacity, every probe that led to it, and the rule used
for the probes' sample sizes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from infercost.spec.common import Spec
from infercost.spec.workload import SLO
from infercost.store.runs import resolve_stored
from infercost.spec.vocabulary import percentile


class CapacityOptions(Spec):
    """How to search. Rate mode (open loop, Poisson unless the workload says otherwise) doubles the arrival rate from
    `start` until a probe fails, then bisects until the bracket is within `precision` of the capacity. Concurrency
    mode (closed loop) does the same over whole numbers of users. With `repeats` > 1 the two edges are then re-run
    (on top of `max_probes`: at most 2 x (repeats - 1) more probes)."""

    mode: Literal["rate", "concurrency"] = "rate"
    start: float | None = Field(default=None, gt=0, description="first load: req/s or users (default: 1)")
    precision: float = Field(default=0.05, gt=0, lt=1, description="stop when (fail - pass) / pass <= this")
    min_load: float = Field(default=0.01, gt=0)
    max_load: float = Field(default=10_000, gt=0)
    max_probes: int = Field(default=16, gt=1)
    tail_samples: int = Field(
        default=10, gt=0, description="observations wanted beyond the strictest SLO percentile in every probe"
    )
    min_requests: int = Field(default=20, gt=0)
    min_duration_s: float = Field(default=10.0, ge=0, description="open loop: at least rate x this many requests")
    requests: int | None = Field(default=None, gt=0, description="fixed requests per probe (overrides the rule)")
    max_in_flight: int | None = Field(
        default=None, gt=0, description="stop a probe whose queue exceeds this (default 4 x max_num_seqs)"
    )
    repeats: int = Field(
        default=1, ge=1, le=10,
        description="runs wanted at each edge (highest pass, lowest fail): after the search, the edges are re-run "
                    "until each has this many, and a verdict that changes between runs is reported as unstable",
    )


def strictest_percentile(slo: SLO) -> float:
    """The highest percentile any SLO bound uses (max counts as p100; mean needs no tail): it sets the sample size."""
    top = 0.5
    for bounds in slo.targets().values():
        for stat in bounds:
            p = percentile(stat)  # max is p100; the mean needs no tail
            if p is not None:
                top = max(top, p / 100)
    return top


def sample_rule(options: CapacityOptions, slo: SLO) -> tuple[int, str]:
    """Requests per probe: enough that the strictest percentile rests on `tail_samples` observations above it,
    n >= tail / (1 - p), and never fewer than `min_requests`. A max bound has no finite rule: min_requests applies."""
    p = strictest_percentile(slo)
    if options.requests is not None:
        return options.requests, f"fixed at {options.requests} requests per probe"
    if p >= 1.0:
        return options.min_requests, f"max bound: {options.min_requests} requests per probe (min_requests)"
    n = max(options.min_requests, math.ceil(options.tail_samples / (1 - p) - 1e-9))
    return n, (f"n >= {options.tail_samples} / (1 - p{p * 100:g}) = {math.ceil(options.tail_samples / (1 - p) - 1e-9)}"
               f", at least {options.min_requests}")


class Probe(BaseModel):
    index: int
    phase: Literal["grow", "shrink", "bisect", "repeat"]  # repeat: an edge re-run
    load: float
    passed: bool
    reason: str | None = None  # the first failed check, or why the probe stopped early
    requests: int | None = None
    completed: int | None = None
    error_rate: float | None = None
    achieved_rps: float | None = None
    output_tps: float | None = None
    slo_observed: dict[str, float | None] = Field(default_factory=dict)  # "ttft_ms.p95" -> ms
    stopped_early: str | None = None
    unloaded: bool = False  # load x mean e2e <= 1: about one request in the system, no queueing to remove
    run_dir: str | None = None  # relative to the capacity directory ("probes/<run>"); older results: absolute


class CapacityResult(BaseModel):
    kind: Literal["measured", "projected"] = "measured"
    workload: str
    deployment: str
    mode: Literal["rate", "concurrency"]
    # unstable: an edge's verdict changed between its runs (repeats > 1); the capacity is then the highest load at
    # which every run passed
    status: Literal["found", "below_min", "at_max", "probe_limit", "infeasible", "failed", "unstable"]
    capacity_load: float | None  # req/s offered (rate mode) or users (concurrency mode) at the best passing probe
    capacity_rps: float | None  # requests per second served at that probe: what cost is computed from
    capacity_output_tps: float | None
    failed_load: float | None  # the lowest load above it at which every run failed
    precision_reached: float | None
    precision_asked: float
    requests_per_probe: int
    sample_rule: str
    probes: list[Probe]
    reason: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    repeats: int = 1  # runs asked at each edge
    # The interval the true capacity lies in, [low, high), in req/s served: low at the highest load where every run
    # passed (the least served there, in concurrency mode), high at the lowest load above it where every run failed
    # (the most served there); None where no such load was probed
    capacity_low_rps: float | None = None
    capacity_high_rps: float | None = None
    stable: bool | None = None  # True when every run at each edge agreed; None without repeats
    # "<load>" -> {"ttft_ms.p95": spread, ..., "achieved_rps": spread}, for every load run more than once
    edge_spread: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def best_probe(self) -> Probe | None:
        passing = [p for p in self.probes if p.passed and p.load == self.capacity_load]
        return passing[-1] if passing else None

    def probe_dir(self, probe: Probe, directory: str | Path | None = None) -> Path | None:
        """A probe's run directory, found from the capacity directory (given, or the one this result was read from
        or written to) so that a moved or copied result still reads its own probes."""
        if not probe.run_dir:
            return None
        return resolve_stored(probe.run_dir, directory or self.provenance.get("capacity_dir") or ".")


def load_capacity(path: str | Path) -> CapacityResult:
    """A capacity result from its directory (or its capacity.json), with `capacity_dir` set to where it was read:
    its probes are found from there wherever the folder was measured."""
    path = Path(path)
    file = path / "capacity.json" if path.is_dir() else path
    result = CapacityResult.model_validate_json(file.read_text())
    if result.kind == "measured":
        result.provenance["capacity_dir"] = str(file.parent)
    return result
