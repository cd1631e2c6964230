"""Projection: model shapes from configs, memory fit, the step-time model, the continuous-batching simulation, and
calibration recovering known parameters. Calibration against real measurements is in test_projection_real."""

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from infercost.capacity import CapacityOptions
from infercost.errors import InputError
from infercost.loadgen.schedule import arrival_offsets
from infercost.metrics import summarize
from infercost.projection.calibrate import Steps, fit, recover_steps
from infercost.projection.hardware import accelerators, get_hardware
from infercost.projection.memory import memory_plan
from infercost.projection.project import Lengths, Projector
from infercost.projection.shape import load_shape, presets
from infercost.projection.simulate import SchedulerConfig, SimRequest, simulate
from infercost.projection.steptime import DEFAULT_GPU, Efficiency, StepModel
from infercost.spec.workload import SLO, Traffic, Workload, SyntheticPrompts

H100 = get_hardware("H100-SXM")


@pytest.mark.parametrize("model, params_b", [("llama-3.1-8b", 8.03), ("llama-3.1-70b", 70.55),
                                             ("qwen2.5-7b", 7.62), ("mixtral-8x7b", 46.70)])
def test_parameter_counts_from_config_match_the_published_sizes(model, params_b):
    assert load_shape(model).params / 1e9 == pytest.approx(params_b, abs=0.01)


def test_moe_reads_only_routed_experts_and_bundled_shape(smollm2_dir):
    mixtral = load_shape("mixtral-8x7b")
    assert mixtral.active_params < 0.3 * mixtral.params
    smol = load_shape(str(smollm2_dir))
    assert smol.params == pytest.approx(134_515_008, rel=1e-6)  # the checkpoint's own parameter count
    assert smol.kv_bytes_per_token(2) == 2 * 30 * 3 * 64 * 2
    assert set(presets()) >= {"llama-3.1-8b", "llama-3.1-70b"}
    with pytest.raises(InputError, match="unknown model"):
        load_shape("no-such-model")


def test_memory_fit_70b_bf16_does_not_fit_one_80gb_gpu_8b_does():
    big = memory_plan(StepModel(load_shape("llama-3.1-70b"), H100, DEFAULT_GPU), H100)
    assert not big.fits and "exceed" in big.reason
    small = memory_plan(StepModel(load_shape("llama-3.1-8b"), H100, DEFAULT_GPU), H100)
    assert small.fits and small.weights_gb == pytest.approx(16.06, abs=0.05)
    two = memory_plan(StepModel(load_shape("llama-3.1-70b"), H100, DEFAULT_GPU, quantization="fp8"), H100, devices=2)
    assert two.fits  # 70 GB of fp8 weights over two GPUs


def test_kv_capacity_grows_when_the_kv_dtype_halves():
    shape = load_shape("llama-3.1-8b")
    bf16 = memory_plan(StepModel(shape, H100, DEFAULT_GPU, kv_cache_dtype="auto"), H100)
    fp8 = memory_plan(StepModel(shape, H100, DEFAULT_GPU, kv_cache_dtype="fp8"), H100)
    assert fp8.kv_capacity_tokens == pytest.approx(2 * bf16.kv_capacity_tokens, rel=1e-3)
    assert fp8.max_concurrent_sequences >= 2 * bf16.max_concurrent_sequences - 1


def test_hardware_table_is_sourced():
    table = accelerators()
    assert {"H100-SXM", "H200", "A100-80GB", "L40S", "L4", "A10G", "MI300X"} <= set(table)
    for hw in table.values():
        assert hw.source.startswith("https://") and hw.bandwidth_gbps > 0 and hw.memory_gb > 0
        assert hw.peak_tflops("bfloat16") > 0 or hw.name == "T4"
    assert table["H200"].bandwidth_gbps > table["H100-SXM"].bandwidth_gbps
    with pytest.raises(InputError, match="unknown hardware"):
        get_hardware("TPU-v9")


def test_step_time_is_bandwidth_bound_in_decode_and_compute_bound_in_prefill():
    step = StepModel(load_shape("llama-3.1-8b"), H100, DEFAULT_GPU)
    one = step.decode_step(1, 1000)
    # batch 1 decode ~ weights / achieved bandwidth + overhead
    assert one == pytest.approx(16.06e9 / (3350e9 * 0.7) + 0.004 + 2e-5, rel=0.02)
    assert step.decode_step(32, 1000) < 2 * one  # batching is nearly free while bandwidth-bound
    long = step.prefill_time(8000)
    assert long > 8000 * 2 * 7.5e9 / (989.5e12 * 0.5)  # at least the dense FLOPs at 50% of peak
    faster = StepModel(load_shape("llama-3.1-8b"), get_hardware("H200"), DEFAULT_GPU).decode_step(1, 1000)
    assert faster < one  # more bandwidth, faster decode


def _eff(**kw):
    base = dict(bandwidth=0.7, compute=0.5, step_overhead_s=0.004, per_seq_overhead_s=2e-5, expected_error=0.3,
                source="test")
    base.update(kw)
    return Efficiency(**base)


def test_simulation_low_load_matches_the_step_model():
    step = StepModel(load_shape("llama-3.1-8b"), H100, _eff())
    reqs = [SimRequest(10.0 * i, 500, 50) for i in range(5)]  # far apart: never overlap
    records = simulate(reqs, step, SchedulerConfig())
    s = summarize(records)
    assert s.completed == 5 and all(r.output_tokens == 50 for r in records)
    assert s.latency["ttft_ms"].stats["p50"] == pytest.approx(step.prefill_time(500) * 1e3, rel=1e-6)
    assert s.latency["tpot_ms"].stats["p50"] == pytest.approx(step.decode_step(1, 525) * 1e3, rel=0.01)


def test_simulation_respects_max_num_seqs_and_prefix_cache():
    step = StepModel(load_shape("llama-3.1-8b"), H100, _eff())
    reqs = [SimRequest(0.0, 200, 20) for _ in range(8)]
    two = summarize(simulate(reqs, step, SchedulerConfig(max_num_seqs=2)))
    eight = summarize(simulate(reqs, step, SchedulerConfig(max_num_seqs=8)))
    assert two.duration_s > 3 * eight.duration_s
    shared = [SimRequest(float(i), 2000, 10, prefix_group=0, prefix_tokens=1900) for i in range(4)]
    on = summarize(simulate(shared, step, SchedulerConfig(enable_prefix_caching=True)))
    off = summarize(simulate(shared, step, SchedulerConfig(enable_prefix_caching=False)))
    assert on.latency["ttft_ms"].stats["p50"] < 0.5 * off.latency["ttft_ms"].stats["p50"]  # the first one misses


def _workload(rate=1.0, n=50, slo=None):
    return Workload(name="w", prompts=SyntheticPrompts(source="synthetic", count=20,
                                                       input_tokens={"dist": "fixed", "mean": 500},
                                                       output_tokens={"dist": "fixed", "mean": 100}),
                    traffic=Traffic(arrival="poisson", rate=rate, num_requests=n),
                    slo=slo or SLO(tpot_ms={"p95": 40}, ttft_ms={"p95": 1000}))


def test_projected_capacity_is_labelled_and_sits_at_the_slo_edge():
    p = Projector(load_shape("llama-3.1-8b"), H100, DEFAULT_GPU, max_num_seqs=64)
    lengths = Lengths(prompt=[500], output=[100], source="test")
    result = asyncio.run(p.capacity(_workload(), lengths, CapacityOptions(precision=0.05)))
    assert result.kind == "projected" and result.status == "found"
    assert result.provenance["expected_error"] == DEFAULT_GPU.expected_error
    best = result.best_probe()
    above = next(p for p in result.probes if p.load == result.failed_load)
    assert best.passed and not above.passed and best.slo_observed["tpot_ms.p95"] <= 40
    infeasible = Projector(load_shape("llama-3.1-70b"), H100, DEFAULT_GPU)
    assert asyncio.run(infeasible.capacity(_workload(), lengths)).status == "infeasible"


def test_calibration_recovers_known_parameters_from_simulated_runs():
    """Records from a simulation with known efficiencies, fed through the same step recovery and fit as measured
    runs, give back step times within a few percent."""
    shape, hw = load_shape("llama-3.1-8b"), get_hardware("L4")
    truth = _eff(bandwidth=0.55, compute=0.35, step_overhead_s=0.006, per_seq_overhead_s=3e-4)
    step = StepModel(shape, hw, truth)
    parts = []
    for mns, rate in ((2, 0.5), (8, 2.0), (16, 4.0)):
        arr = arrival_offsets("poisson", rate, 80, seed=mns)
        rng = np.random.default_rng(mns)
        reqs = [SimRequest(float(a), int(rng.integers(64, 600)), 32) for a in arr]
        records = simulate(reqs, step, SchedulerConfig(max_num_seqs=mns))
        parts.append(recover_steps(pd.DataFrame([r.to_row() for r in records])))
    steps = Steps.concat(parts)
    assert len(steps) > 200
    eff, stats = fit(steps, shape, hw, "bfloat16")
    assert stats["step_median_abs_rel_error"] < 0.03
    fitted = StepModel(shape, hw, eff)
    for batch, ctx in ((1, 300), (8, 400), (16, 600)):
        assert fitted.decode_step(batch, ctx) == pytest.approx(step.decode_step(batch, ctx), rel=0.08)
    assert fitted.prefill_time(512) == pytest.approx(step.prefill_time(512), rel=0.15)


def test_project_command_labels_figures_as_projected():
    import json
    import subprocess
    import sys

    from conftest import WORKLOADS

    run = lambda *a: subprocess.run([sys.executable, "-m", "infercost", "project", str(WORKLOADS / "chat-support.yaml"),  # noqa: E731
                                     *a], capture_output=True, text=True)
    out = run("-m", "llama-3.1-8b", "-H", "H100-SXM", "--json", "--precision", "0.1")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["capacity"]["kind"] == "projected" and data["capacity"]["capacity_rps"] > 0
    assert data["provenance"]["expected_error"] == DEFAULT_GPU.expected_error
    assert "not calibrated" in data["provenance"]["efficiency"]["source"]
    rows = data["cost"]
    assert rows and all(r["kind"] == "projected" and r["accelerator"] == "H100-SXM" for r in rows)
    assert all(r["capacity_basis"].startswith("projected capacity") for r in rows)
    big = json.loads(run("-m", "llama-3.1-70b", "-H", "H100-SXM", "--json").stdout)
    assert big["capacity"]["status"] == "infeasible" and "exceed" in big["capacity"]["reason"]
    bad = run("-m", "llama-3.1-8b", "-H", "TPU-v9")
    assert bad.returncode == 2 and "unknown hardware" in bad.stderr and "Traceback" not in bad.stderr


def test_bf16_on_a_cpu_without_native_bf16_is_credited_with_the_fp32_rate():
    """torch.mm's bf16 path on a CPU without AVX-512 BF16 measured 0.93 GFLOP/s against fp32's 138 (2-core AMD
    EPYC), while vLLM's CPU engine decoded bf16 at 68 ms a token there; the screen must not take the reference loop
    for the engine."""
    from infercost.projection.hardware import Hardware, _bf16_at_least_fp32

    slow = Hardware(name="host-cpu", memory_gb=25, bandwidth_gbps=32, tflops={"fp32": 0.138, "bf16": 0.00093},
                    source="measured here", as_of="2026-12-03", measured=True)
    credited = _bf16_at_least_fp32(slow)
    assert credited.tflops == {"fp32": 0.138, "bf16": 0.138} and "torch.mm bf16 measured 0.93 GFLOP/s" in credited.source
    native = slow.model_copy(update={"tflops": {"fp32": 0.138, "bf16": 0.5}})
    assert _bf16_at_least_fp32(native) is native
