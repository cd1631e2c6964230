"""How fast configurations are projected: the analytic screen (target >= 10,000 configs/s) and the simulation
(requests simulated per second), so a search can screen a large space before it measures anything."""

import itertools

from infercost.loadgen.schedule import arrival_offsets
from infercost.projection.analytic import estimate
from infercost.projection.hardware import accelerators
from infercost.projection.memory import memory_plan
from infercost.projection.shape import load_shape
from infercost.projection.simulate import SchedulerConfig, SimRequest, simulate
from infercost.projection.steptime import DEFAULT_GPU, StepModel

SHAPES = [load_shape(m) for m in ("llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "mixtral-8x7b")]
HARDWARE = [h for h in accelerators().values() if h.tflops]
SPACE = list(itertools.product(SHAPES, HARDWARE, ("bfloat16", "fp8", "awq"), (1, 2, 4, 8), (16, 64, 256)))


def test_analytic_configs_per_second(benchmark):
    def screen():
        kept = 0
        for shape, hw, quant, devices, seqs in SPACE:
            q = None if quant == "bfloat16" else quant
            step = StepModel(shape, hw, DEFAULT_GPU, quantization=q, tensor_parallel=devices)
            plan = memory_plan(step, hw, devices)
            kept += estimate(step, plan, 800, 200, seqs, 0.05).fits
        return kept

    kept = benchmark(screen)
    per_s = len(SPACE) / benchmark.stats.stats.mean
    benchmark.extra_info.update(configs=len(SPACE), configs_per_s=round(per_s), feasible=kept)
    print(f"\nanalytic screen: {len(SPACE)} configs, {per_s:,.0f} configs/s, {kept} fit")
    assert per_s >= 10_000


def test_simulation_requests_per_second(benchmark):
    step = StepModel(load_shape("llama-3.1-8b"), accelerators()["H100-SXM"], DEFAULT_GPU)
    reqs = [SimRequest(float(a), 800, 200) for a in arrival_offsets("poisson", 20.0, 1000, seed=1)]
    config = SchedulerConfig(max_num_seqs=256, max_num_batched_tokens=8192, kv_capacity_tokens=400_000)
    records = benchmark(simulate, reqs, step, config)
    per_s = len(reqs) / benchmark.stats.stats.mean
    benchmark.extra_info.update(requests=len(reqs), requests_per_s=round(per_s))
    print(f"\nsimulation: {len(reqs)} requests of 800+200 tokens at 20 req/s: {per_s:,.0f} simulated requests/s "
          f"({benchmark.stats.stats.mean * 1e3:.0f} ms per 1000-request probe)")
    assert all(r.end_s is not None for r in records)
