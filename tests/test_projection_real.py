"""The projection validated against real measurements: vLLM's CPU engine with SmolLM2 at max_num_seqs 4, 8 and 16
(three measured capacity searches, kept in results/calibration/runs). Calibrating on two configurations predicts the
third's mean TPOT and capacity within the 20% target. The projection uses the host probe recorded with those runs (the
machine they were measured on), never a probe of the machine running the test."""

from pathlib import Path

import pytest

from infercost.projection.calibrate import Steps, fit
from infercost.projection.shape import load_shape
from infercost.projection.validate import leave_one_out, load_measured, recorded_hardware, summarise_errors

RUNS = Path(__file__).resolve().parents[1] / "results" / "calibration" / "runs"


@pytest.fixture(scope="module")
def configs():
    dirs = sorted(RUNS.iterdir())
    assert len(dirs) == 3
    return [load_measured(d) for d in dirs]


@pytest.fixture(scope="module")
def measured_on(configs):
    hardware = recorded_hardware(configs)
    assert hardware is not None and hardware.measured and hardware.bandwidth_gbps > 0
    return hardware


def test_measured_runs_are_complete_and_distinct(configs):
    assert sorted(c.deployment["max_num_seqs"] for c in configs) == [4, 8, 16]
    for c in configs:
        assert c.result.status == "found" and c.result.capacity_rps > 0
        assert len(c.steps) > 200
        assert c.engine["engine"] == "vllm" and c.engine["device"] == "cpu"


def test_leave_one_configuration_out_within_20_percent(configs, measured_on, smollm2_dir):
    shape = load_shape(str(smollm2_dir)).model_copy(update={"name": "smollm2-135m-instruct"})
    rows = leave_one_out(configs, shape, measured_on, "float32")
    errors = summarise_errors(rows)
    print("\n" + "\n".join(f"{r['held_out']:>16} {r['figure']:>13} {r['measured']:8.3f} {r['projected']:8.3f} "
                           f"{r['abs_rel_error']:6.1%}" for r in rows))
    assert errors["capacity_rps_n"] == 3 and errors["tpot_mean_ms_n"] >= 9
    assert errors["tpot_mean_ms_mae"] <= 0.20, errors
    assert errors["capacity_rps_mae"] <= 0.20, errors


def test_full_calibration_fits_steps(configs, measured_on, smollm2_dir):
    eff, stats = fit(Steps.concat([c.steps for c in configs]), load_shape(str(smollm2_dir)), measured_on, "float32")
    assert stats["step_median_abs_rel_error"] < 0.2
    assert eff.step_overhead_s > 0  # per-step fixed cost is real on this engine
