"""Projected runs and capacity: the workload's arrivals and token lengths through the simulator, summarised and
searched exactly like measured ones, and labelled as projected with the calibration used and its expected error."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel

from infercost.capacity.probes import capacity_found, no_capacity, probe_from_summary
from infercost.capacity.result import CapacityOptions, CapacityResult, Probe, sample_rule
from infercost.capacity.search import search_capacity
from infercost.errors import InputError
from infercost.loadgen.schedule import arrival_offsets, phased_offsets
from infercost.metrics import RunSummary, summarize
from infercost.metrics.summary import summarize_columns
from infercost.projection.hardware import Hardware
from infercost.projection.memory import MemoryPlan, memory_plan
from infercost.projection.shape import ModelShape
from infercost.projection.simulate import SchedulerConfig, SimBatch, run_batch
from infercost.projection.steptime import Efficiency, StepModel
from infercost.spec.vocabulary import percentile
from infercost.spec.workload import SyntheticPrompts, TracePrompts, Workload
from infercost.workload.requests import build_requests, draw_lengths, load_trace

MIN_PROJECTED_REQUESTS = 200  # simulated probes are cheap: enough requests for stable percentiles


def ttft_guard(slo, planned: int) -> tuple[float, int] | None:
    """The strictest TTFT percentile bound as (seconds, requests allowed over it among `planned`), as the measured
    probes' SloAlreadyLost counts them; None without a TTFT percentile bound."""
    best = None
    for stat, bound in slo.targets().get("ttft_ms", {}).items():
        q = 100.0 if stat == "max" else percentile(stat)
        if q is None:
            continue
        allowed = math.floor((1 - q / 100) * planned + 1e-9)
        if best is None or allowed < best[1] or (allowed == best[1] and bound / 1e3 < best[0]):
            best = (bound / 1e3, allowed)
    return best


class Lengths(BaseModel):
    """Token lengths per request (cycled), the shared prefix, and how they were obtained."""

    prompt: list[int]
    output: list[int]
    prefix_tokens: int = 0
    prefix_groups: int = 1
    source: str
    arrivals: list[float] | None = None  # a trace's offsets (s): the simulation replays them


def workload_lengths(workload: Workload, count_tokens: Callable[[str], int] | None = None) -> Lengths:
    """Synthetic workloads: drawn from their distributions, as the load generator does. Prompt files: counted with
    `count_tokens` when given (the model's tokenizer), else estimated at 4 characters per token; outputs at
    max_tokens (an upper bound unless measured lengths are supplied instead)."""
    src = workload.prompts
    if isinstance(src, TracePrompts):
        trace = load_trace(workload)
        return Lengths(prompt=list(trace.input_tokens), output=list(trace.output_tokens), source=trace.source,
                       arrivals=[float(x) for x in trace.offsets_s])
    if isinstance(src, SyntheticPrompts):
        rng = np.random.default_rng(workload.traffic.seed)
        inputs = draw_lengths(src.input_tokens, src.count, rng)
        outputs = draw_lengths(src.output_tokens, src.count, rng)
        return Lengths(prompt=[int(x) + src.shared_prefix_tokens for x in inputs], output=[int(x) for x in outputs],
                       prefix_tokens=src.shared_prefix_tokens, prefix_groups=src.prefix_groups,
                       source="drawn from the workload's synthetic length distributions")
    requests = build_requests(workload)
    counter = count_tokens or (lambda text: max(1, math.ceil(len(text) / 4)))
    overhead = 8 if workload.api == "chat" else 0  # chat template tokens around each message
    prompt = [counter(r.text()) + overhead * len(r.messages or []) for r in requests]
    how = "counted with the model's tokenizer" if count_tokens else "estimated at 4 characters per token"
    return Lengths(prompt=prompt, output=[r.max_tokens for r in requests],
                   source=f"prompts {how}; outputs at max_tokens (upper bound)")


def measured_lengths(records: list[tuple[int, int]], source: str) -> Lengths:
    return Lengths(prompt=[p for p, _ in records], output=[max(1, o) for _, o in records], source=source)


def traced_rate(lengths: Lengths) -> float:
    """A trace window's mean rate as replayed (requests per second); a capacity search scales its time by
    rate / this."""
    a = lengths.arrivals or [0.0]
    return (len(a) - 1) / a[-1] if len(a) > 1 and a[-1] > 0 else 1.0


class Projector:
    """Everything needed to project one configuration on one hardware."""

    def __init__(self, shape: ModelShape, hardware: Hardware, efficiency: Efficiency, *, dtype: str = "bfloat16",
                 quantization: str | None = None, kv_cache_dtype: str = "auto", devices: int = 1,
                 max_num_seqs: int = 256, max_num_batched_tokens: int | None = None,
                 enable_prefix_caching: bool = True, memory_utilization: float = 0.9, block_size: int = 16,
                 max_model_len: int = 4096, kv_capacity_tokens: int | None = None):
        self.shape, self.hardware, self.efficiency = shape, hardware, efficiency
        self.settings = dict(dtype=dtype, quantization=quantization, kv_cache_dtype=kv_cache_dtype, devices=devices,
                             max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                             enable_prefix_caching=enable_prefix_caching, memory_utilization=memory_utilization,
                             block_size=block_size, max_model_len=max_model_len, kv_capacity_tokens=kv_capacity_tokens)
        self.step = StepModel(shape, hardware, efficiency, dtype, quantization, kv_cache_dtype, devices)
        self.memory: MemoryPlan = memory_plan(self.step, hardware, devices, memory_utilization, max_model_len)
        self.scheduler = SchedulerConfig(
            max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens or max(2048, max_model_len),
            kv_capacity_tokens=kv_capacity_tokens or self.memory.kv_capacity_tokens,
            enable_prefix_caching=enable_prefix_caching, block_size=block_size,
        )
        self.config = dict(model=shape.name, hardware=hardware.name, devices=devices, dtype=dtype,
                           quantization=quantization, kv_cache_dtype=kv_cache_dtype, max_num_seqs=max_num_seqs,
                           max_num_batched_tokens=self.scheduler.max_num_batched_tokens,
                           enable_prefix_caching=enable_prefix_caching)

    def with_efficiency(self, efficiency: Efficiency) -> "Projector":
        """The same configuration with other efficiencies: how the error band's ends are simulated."""
        return Projector(self.shape, self.hardware, efficiency, **self.settings)

    def band_ends(self) -> tuple["Projector", "Projector"]:
        """Projectors at the slow and fast ends of the expected error: every step time (bandwidth, compute and
        overheads alike) longer or shorter by that share. Their capacities are simulated, not scaled, so queueing
        and batching respond to the slower or faster steps as they would."""
        e = self.efficiency.expected_error
        slow, fast = 1 + e, max(0.05, 1 - e)
        scaled = lambda f: self.efficiency.model_copy(update={  # noqa: E731  f: step time factor
            "bandwidth": self.efficiency.bandwidth / f, "compute": self.efficiency.compute / f,
            "step_overhead_s": self.efficiency.step_overhead_s * f,
            "per_seq_overhead_s": self.efficiency.per_seq_overhead_s * f})
        return self.with_efficiency(scaled(slow)), self.with_efficiency(scaled(fast))

    def provenance(self, lengths: Lengths) -> dict[str, Any]:
        return {"kind": "projected", "config": self.config, "model_shape": self.shape.model_dump(),
                "hardware": self.hardware.model_dump(), "efficiency": self.efficiency.model_dump(),
                "expected_error": self.efficiency.expected_error, "memory": self.memory.model_dump(),
                "lengths": lengths.source}

    def requests(self, lengths: Lengths, arrivals: np.ndarray, seed: int = 0) -> SimBatch:
        """One request per arrival, its token lengths cycled from `lengths`, its prefix group drawn."""
        rng = np.random.default_rng(seed)
        m = len(arrivals)
        groups = (rng.integers(0, lengths.prefix_groups, size=m).astype(np.int64) if lengths.prefix_tokens
                  else np.full(m, -1, np.int64))
        cycle = np.arange(m) % len(lengths.prompt)
        return SimBatch(np.asarray(arrivals, dtype=float), np.asarray(lengths.prompt, dtype=np.int64)[cycle],
                        np.asarray(lengths.output, dtype=np.int64)[cycle], groups, lengths.prefix_tokens)

    def run(self, workload: Workload, lengths: Lengths, rate: float | None = None, requests: int | None = None,
            arrivals: np.ndarray | None = None, probe: bool = False) -> RunSummary | tuple[RunSummary, str | None]:
        """`probe=True`: a capacity probe, judged on its SLO checks only: no intervals, per-token times only when an
        ITL bound needs them, and an early end once a TTFT bound is lost; returns (summary, why it stopped early)."""
        if not self.memory.fits:
            raise InputError(f"does not fit: {self.memory.reason}", field="hardware")
        t = workload.traffic
        if arrivals is None and lengths.arrivals is not None:  # a trace: its own offsets, compressed to `rate`
            arrivals = np.asarray(lengths.arrivals)
            if rate is not None:
                arrivals = arrivals * (traced_rate(lengths) / rate)
        if arrivals is None and t.phases and rate is None:  # the same phases, drawn as the load generator does
            arrivals = phased_offsets(t.phases, t.arrival, t.burstiness, t.seed)[0]
        if arrivals is None:
            if t.arrival == "concurrency" and rate is None:
                raise InputError("projection needs open-loop traffic (a rate); closed-loop is not simulated",
                                 field="traffic.arrival")
            arrival = t.arrival if t.arrival != "concurrency" else "poisson"
            n = requests or t.num_requests or MIN_PROJECTED_REQUESTS
            arrivals = arrival_offsets(arrival, rate or t.rate, n, burstiness=t.burstiness, seed=t.seed)
        batch = self.requests(lengths, arrivals, t.seed)
        if not probe:
            return summarize(run_batch(batch, self.step, self.scheduler).records(), workload.slo)
        targets = workload.slo.targets()
        result = run_batch(batch, self.step, self.scheduler, token_times="itl_ms" in targets,
                           ttft_lost=ttft_guard(workload.slo, len(arrivals)))
        return summarize_columns(result.columns(), workload.slo), result.stopped

    async def capacity(self, workload: Workload, lengths: Lengths, options: CapacityOptions | None = None,
                       growth: float = 2.0) -> CapacityResult:
        options = options or CapacityOptions()
        if options.mode != "rate":
            raise InputError("projected capacity is searched over rates (open loop)", field="mode")
        n, rule = sample_rule(options, workload.slo)
        n = max(n, MIN_PROJECTED_REQUESTS)
        plan = self.memory

        async def probe(load: float, phase: str, index: int) -> Probe:
            count = max(n, math.ceil(load * options.min_duration_s))
            summary, stopped = self.run(workload, lengths, rate=load, requests=count, probe=True)
            # a simulated probe costs milliseconds: the search may go on shrinking where a measured one would stop
            return probe_from_summary(index, phase, load, summary, stopped=stopped, mark_unloaded=False)

        base = dict(kind="projected", workload=workload.name, deployment=f"{self.shape.name} on "
                    f"{self.config['devices']}x {self.hardware.name}", mode="rate", precision_asked=options.precision,
                    requests_per_probe=n, sample_rule=f"{rule}; projected probes use at least "
                    f"{MIN_PROJECTED_REQUESTS}", tags=workload.tags.as_dict(), provenance=self.provenance(lengths))
        if not plan.fits:
            return no_capacity("infeasible", plan.reason, **base)
        return capacity_found(await search_capacity(probe, options, growth), **base)
