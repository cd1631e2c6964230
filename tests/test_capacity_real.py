"""Capacity search on the real vLLM CPU engine with the bundled SmolLM2 and the chat workload: every probe is a
real run, the capacity probe meets every SLO, and the probe just above it does not (or the bracket reached the
precision asked). The search re-runs its edges once (repeats 2), so the verdict's stability is measured on a real
engine; `run --repeats 2` replays a workload twice on one engine."""

import json
from pathlib import Path

import pytest

from infercost.capacity import CapacityOptions
from infercost.capacity.measured import load_capacity, measure_capacity
from infercost.spec import load_deployment, load_workload
from infercost.store import RunStore, load_run

from conftest import WORKLOADS

pytest.importorskip("vllm")
pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def capacity(tmp_path_factory, smollm2_dir):
    import asyncio

    workload = load_workload(WORKLOADS / "chat-support.yaml", ["sampling.max_tokens=16"])
    deployment = load_deployment(None)
    options = CapacityOptions(precision=0.25, tail_samples=1, min_requests=20, min_duration_s=5, max_probes=8,
                              repeats=2)
    root = tmp_path_factory.mktemp("capacity")
    return asyncio.run(measure_capacity(workload, deployment, RunStore(root), options)), workload


def test_capacity_probe_meets_the_slo_and_the_next_one_up_does_not(capacity):
    result, workload = capacity
    # the verdict the probes themselves give: unstable exactly when two runs at one load (the search repeats its
    # edges) disagree; a real engine on a shared machine can flip either way, the stored probes say which it did
    verdicts = [{p.passed for p in result.probes if p.load == load} for load in {p.load for p in result.probes}]
    expected = "unstable" if any(len(v) > 1 for v in verdicts) else "found"
    assert result.status == expected, result.reason
    assert result.kind == "measured" and result.capacity_rps == result.capacity_load > 0
    best = result.best_probe()
    assert best.passed and best.stopped_early is None
    run = load_run(result.probe_dir(best))  # the probe's own stored run agrees: every SLO check passed
    assert run.summary["slo_met"] is True
    assert run.summary["requests"] >= result.requests_per_probe == 20
    assert all(c["passed"] for c in run.summary["slo_checks"])
    above = [p for p in result.probes if p.load > best.load]
    assert above and all(not p.passed for p in above if p.load == result.failed_load)
    if result.stable:
        assert (result.failed_load - best.load) / best.load <= 0.25  # the bracket reached the precision asked
    failing = next(p for p in result.probes if p.load == result.failed_load)
    assert failing.reason  # why it failed: an SLO check or an early stop
    if failing.run_dir:
        failed_run = load_run(result.probe_dir(failing))
        assert failed_run.summary["slo_met"] is False or failed_run.manifest.get("stopped_early")


def test_the_edges_are_rerun_and_their_spread_kept(capacity):
    from io import StringIO

    from rich.console import Console

    from infercost.report.console import print_capacity

    result, workload = capacity
    repeats = [p for p in result.probes if p.phase == "repeat"]
    searched = [p for p in result.probes if p.phase != "repeat"]
    edges = {max(p.load for p in searched if p.passed), min(p.load for p in searched if not p.passed)}
    assert result.repeats == 2 and {p.load for p in repeats} == edges and len(repeats) == 2
    assert isinstance(result.stable, bool) and (result.status == "unstable") == (not result.stable)
    for load in edges:
        spread = result.edge_spread[f"{load:g}"]
        assert spread["ttft_ms.p95"]["n"] == 2 and spread["achieved_rps"]["n"] == 2
        runs = [p for p in result.probes if p.load == load]
        seeds = [load_run(result.probe_dir(p)).manifest["workload"]["traffic"]["seed"] for p in runs]
        assert seeds == [workload.traffic.seed, workload.traffic.seed + 1]  # the repeat drew anew
    assert result.capacity_low_rps == result.capacity_rps  # rate mode: the offered rate
    assert result.capacity_high_rps == result.failed_load
    out = StringIO()
    print_capacity(Console(file=out, width=200), result)
    assert ("stable: all 2 runs agreed" in out.getvalue()) == result.stable
    assert ("unstable within noise" in out.getvalue()) == (not result.stable)


def test_run_repeats_replays_twice_on_one_engine(tmp_path, capsys):
    from infercost.cli import main

    code = main(["run", str(WORKLOADS / "chat-support.yaml"), "-w", "traffic.num_requests=8", "-w",
                 "sampling.max_tokens=8", "--repeats", "2", "--results-dir", str(tmp_path), "-q"])
    out = capsys.readouterr().out
    assert code == 0
    (parent,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(parent)
    assert run.manifest["status"] == "completed" and run.manifest["repeats"] == 2
    assert (parent / "engine.log").is_file() and run.manifest["startup_s"] > 0  # started once, here
    replays = [load_run(parent / rel) for rel in run.manifest["replays"]]
    assert len(replays) == 2 and not any((r.directory / "engine.log").exists() for r in replays)
    assert all(r.manifest["engine"]["engine"] == "vllm" and r.summary["completed"] == 8 for r in replays)
    assert replays[1].manifest["workload"]["traffic"]["warmup_requests"] == 0  # warm-up before the first only
    s = run.summary
    assert s["requests"] == 16 and s["latency"]["e2e_ms"]["count"] == 16
    assert s["request_throughput_rps"] == pytest.approx(
        sum(r.summary["request_throughput_rps"] for r in replays) / 2)
    assert s["repeats"]["n"] == 2 and s["repeats"]["spread"]["ttft_ms.p95"]["n"] == 2
    assert "2 replays on one engine" in out
    assert main(["show", str(parent)]) == 0 and "2 replays on one engine" in capsys.readouterr().out


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
        # at capacity: every replica busy at the default 70% target; the headline: the month's bill per 1k served
        assert r["cost_per_1k_at_capacity"] == pytest.approx(
            r["effective_hourly_price"] / (result.capacity_rps * 0.7 * 3600) * 1000)
        assert r["cost_per_1k_requests"] == pytest.approx(r["monthly_cost"] / r["monthly_requests"] * 1000)
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
