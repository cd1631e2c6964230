"""The demo study, shortened (fewer trials and lighter probes than `make demo`): SmolLM2 measured here on vLLM-CPU
(max_num_seqs 4 and 8, prefix caching on and off) and on transformers with bitsandbytes nf4, real capacity searches
and real quality evaluations, and the same configurations projected onto L4 and H100 GPUs. The study completes, its
best configuration meets the quality target and the SLOs, rejected configurations carry their reasons, and the
report is written."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["--study-set", "sampler=tpe", "--study-set", "n_trials=8", "--study-set", "space.max_num_seqs=[4, 8]",
         "--study-set", "space.placements.pricing=[on_demand]"]

pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    results = tmp_path_factory.mktemp("study")
    out = subprocess.run([sys.executable, "-m", "infercost", "optimize", str(ROOT / "workloads/studies/demo.yaml"),
                          *SHORT, "--results-dir", str(results), "--json", "--quiet", "--report"],
                         capture_output=True, text=True, timeout=3000)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout), results


def test_best_configuration_meets_quality_and_slo(study):
    result, _ = study
    assert result["trials"] == 8 and result["feasible"] >= 1
    best = result["best"][0]["outcome"]
    assert best["status"] == "feasible" and best["capacity_rps"] > 0
    assert best["quality_met"] is True and best["quality_score"] is not None
    assert all(v <= 0 for v in best["constraints"].values())
    assert best["cost"]["cost_per_1k_requests"] > 0 and best["cost"]["price_source"].startswith("http")
    slo = best["slo_observed"]
    assert slo["ttft_ms.p95"] <= 2000 and slo["tpot_ms.p95"] <= 250 and slo["e2e_ms.p95"] <= 15000


def test_baseline_measured_once_and_reused(study):
    result, _ = study
    base = result["baseline"]
    assert base["kind"] == "measured" and base["status"] == "feasible" and base["evidence"]
    assert (Path(base["evidence"]) / "capacity.json").is_file()
    assert "savings" in result["best"][0]


def test_rejections_have_reasons_and_trials_table(study):
    result, results = study
    assert all(r["reason"] for r in result["rejected"])
    out = subprocess.run([sys.executable, "-m", "infercost", "trials", str(ROOT / "workloads/studies/demo.yaml"),
                          "--results-dir", str(results), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 8 and rows[0]["reused_from"] == "baseline"  # today's plan is tried first, not re-measured
    kinds = {r["kind"] for r in rows if r["status"] != "rejected"}
    assert "measured" in kinds


def test_the_demo_writes_its_report(study):
    result, _ = study
    html = Path(result["report"]["html"])
    data = json.loads(Path(result["report"]["json"]).read_text())
    assert html.is_file() and data["recommendation"]["monthly_cost"] == pytest.approx(
        result["best"][0]["outcome"]["objective"])
    assert data["evidence"]["kind"] in ("measured", "projected") and data["finops"]["budget"]
