"""Capacity search on the real vLLM CPU engine with the bundled SmolLM2 and the chat workload: every probe is a
real run, the capacity probe meets every SLO, and the probe just above it does not (or the bracket reached the
precision asked)."""

import json
from pathlib import Path

import pytest

from infercost.capacity import CapacityOptions
from infercost.capacity.measured import load_capacity, measure_capacity
from infercost.spec import load_deployment, load_workload
from infercost.store import RunStore, load_run

from conftest import WORKLOADS

pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def capacity(tmp_path_factory, smollm2_dir):
    import asyncio

    workload = load_workload(WORKLOADS / "chat-support.yaml", ["sampling.max_tokens=16"])
    deployment = load_deployment(None)
    options = CapacityOptions(precision=0.25, tail_samples=1, min_requests=20, min_duration_s=5, max_probes=8)
    root = tmp_path_factory.mktemp("capacity")
    return asyncio.run(measure_capacity(workload, deployment, RunStore(root), options)), workload


def test_capacity_probe_meets_the_slo_and_the_next_one_up_does_not(capacity):
    result, workload = capacity
    assert result.status == "found", result.reason
    assert result.kind == "measured" and result.capacity_rps == result.capacity_load > 0
    best = result.best_probe()
    assert best.passed and best.stopped_early is None
    run = load_run(result.probe_dir(best))  # the probe's own stored run agrees: every SLO check passed
    assert run.summary["slo_met"] is True
    assert run.summary["requests"] >= result.requests_per_probe == 20
    assert all(c["passed"] for c in run.summary["slo_checks"])
    above = [p for p in result.probes if p.load > best.load]
    assert above and all(not p.passed for p in above if p.load == result.failed_load)
    assert (result.failed_load - best.load) / best.load <= 0.25  # the bracket reached the precision asked
    failing = next(p for p in result.probes if p.load == result.failed_load)
    assert failing.reason  # why it failed: an SLO check or an early stop
    if failing.run_dir:
        failed_run = load_run(result.probe_dir(failing))
        assert failed_run.summary["slo_met"] is False or failed_run.manifest.get("stopped_early")


def test_every_probe_is_kept_with_provenance(capacity):
    result, workload = capacity
    cap_dir = Path(result.provenance["capacity_dir"])
    assert load_capacity(cap_dir) == result
    assert len(list((cap_dir / "probes").iterdir())) == len(result.probes)
    manifest = json.loads((cap_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["kind"] == "capacity"
    assert manifest["versions"]["vllm"] and manifest["hardware"]["cpu_usable_cores"] >= 1
    assert result.provenance["engine"]["engine"] == "vllm"
    assert result.tags == workload.tags.as_dict() and result.tags["team"]
    for p in result.probes:
        assert load_run(result.probe_dir(p)).manifest["workload"]["traffic"]["rate"] == p.load


def test_cost_command_prices_the_measured_capacity(capacity, tmp_path):
    import subprocess
    import sys

    result, workload = capacity
    cap_dir = result.provenance["capacity_dir"]
    focus = tmp_path / "focus.csv"
    out = subprocess.run([sys.executable, "-m", "infercost", "cost", cap_dir, "--api", "openai/gpt-4o-mini",
                          "--showback", "team", "--focus", str(focus), "--json", "--top", "0"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    priced = data[0]
    assert "CPU instances" in priced["selection"]  # measured on this CPU machine: priced on CPU instances
    rows = priced["rows"]
    self_hosted = [r for r in rows if r["kind"] == "measured"]
    assert self_hosted and all(r["accelerator"] == "none" for r in self_hosted)
    for r in self_hosted:
        assert r["capacity_rps"] == pytest.approx(result.capacity_rps)
        assert r["cost_per_1k_requests"] == pytest.approx(r["hourly_price"] / (result.capacity_rps * 3600) * 1000)
        assert r["tags"] == workload.tags.as_dict() and r["price_source"].startswith("http")
        assert r["monthly_cost"] > 0 and r["replicas_at_peak"] >= 1
    api = next(r for r in rows if r["kind"] == "api")
    assert api["mean_output_tokens"] > 0 and api["monthly_cost"] > 0
    assert priced["budget"] and {b["status"] for b in priced["budget"].values()} <= {"ok", "warn", "breach"}
    assert priced["value"][0]["monthly_value"] > 0
    assert data[1]["showback"][0]["team"] == workload.tags.team
    assert focus.is_file() and "BilledCost" in focus.read_text().splitlines()[0]

    bad = subprocess.run([sys.executable, "-m", "infercost", "cost", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "no manifest.json" in bad.stderr and "Traceback" not in bad.stderr


def test_engine_steps_recovered_from_real_token_timestamps_fit_the_step_model(capacity):
    """Calibration input from a real vLLM run: steps recovered from token timestamps, fitted by the step model."""
    from infercost.projection.calibrate import Steps, fit, recover_steps
    from infercost.projection.hardware import host_cpu
    from infercost.projection.shape import load_shape

    result, _ = capacity
    runs = [load_run(result.probe_dir(p)) for p in result.probes]
    steps = Steps.concat([recover_steps(r.requests) for r in runs])
    assert len(steps) > 50
    assert (steps.sequences >= 1).all() and (steps.duration > 0).all()
    engine = result.provenance["engine"]
    eff, stats = fit(steps, load_shape(engine["model_dir"]), host_cpu(), engine["dtype"])
    assert stats["step_median_abs_rel_error"] < 0.3, stats
    assert eff.step_overhead_s >= 0 and eff.per_seq_overhead_s >= 0
