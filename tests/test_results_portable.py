"""Results can be moved: stored results name their probes and runs relative to the file that names them, so a copied
results folder gives the same cost and projection figures as the original (older absolute paths still read)."""

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from infercost.capacity import CapacityOptions
from infercost.capacity.measured import measure_capacity
from infercost.capacity.result import load_capacity
from infercost.cli import main
from infercost.cost.inputs import load_priced_input
from infercost.loadgen.stub_server import stub_server
from infercost.projection.calibrate import load_calibration
from infercost.projection.validate import load_measured, recorded_hardware
from infercost.spec.deployment import OpenAIDeployment
from infercost.spec.workload import Workload
from infercost.store import RunStore

CALIBRATION = Path(__file__).resolve().parents[1] / "results" / "calibration"
RUNS = sorted((CALIBRATION / "runs").iterdir())


def _throughput(path):
    t = load_priced_input(path).throughput.model_dump()
    t.pop("evidence")  # the directory it was read from: the one field that should differ
    return t


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name[:16])
def test_a_copied_calibration_run_prices_and_projects_like_the_original(run, tmp_path):
    copy = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, copy)
    original, moved = _throughput(run), _throughput(copy)
    assert moved == original
    assert moved["mean_input_tokens"] > 0 and moved["mean_output_tokens"] > 0  # read from the best probe's run
    result = load_capacity(copy)
    assert result.probe_dir(result.best_probe()).is_relative_to(copy)

    a, b = load_measured(run), load_measured(copy)
    assert [r.directory.relative_to(copy) for r in b.runs] == [r.directory.relative_to(run) for r in a.runs]
    for field in ("sequences", "tokens", "kv_read", "pairs", "duration"):
        assert np.array_equal(getattr(a.steps, field), getattr(b.steps, field))
    assert a.lengths().prompt == b.lengths().prompt and a.lengths().output == b.lengths().output
    assert b.result.capacity_rps == a.result.capacity_rps and b.host_probe == a.host_probe is not None


def test_committed_results_store_no_absolute_paths():
    for run in RUNS:
        data = json.loads((run / "capacity.json").read_text())
        assert data["provenance"]["capacity_dir"] == "."
        assert all(not Path(p["run_dir"]).is_absolute() for p in data["probes"])
    data = json.loads((CALIBRATION / "vllm-cpu-smollm2-135m-instruct.json").read_text())
    assert data["runs"] and all(not Path(r).is_absolute() for r in data["runs"])


def test_cost_with_api_prices_on_a_copied_run(tmp_path, capsys):
    """The reported symptom: a copied run lost its token counts (its probes were named by absolute paths)."""
    copy = tmp_path / RUNS[0].name
    shutil.copytree(RUNS[0], copy)
    assert main(["cost", str(copy), "--api", "openai/gpt-4o-mini", "--json", "--top", "1"]) == 0
    api = next(r for r in json.loads(capsys.readouterr().out)[0]["rows"] if r["kind"] == "api")
    assert api["mean_output_tokens"] > 0 and str(copy) in api["evidence"]


def test_old_absolute_paths_read_the_copy_next_to_the_file(tmp_path):
    """Results written before paths were relative: the copied folder's own probes are read, not the originals."""
    copy = tmp_path / RUNS[0].name
    shutil.copytree(RUNS[0], copy)
    data = json.loads((copy / "capacity.json").read_text())
    for p in data["probes"]:
        p["run_dir"] = str(RUNS[0] / p["run_dir"])  # absolute, and the original still exists
    data["provenance"]["capacity_dir"] = str(RUNS[0])
    (copy / "capacity.json").write_text(json.dumps(data))
    result = load_capacity(copy)
    assert all(result.probe_dir(p).is_relative_to(copy) for p in result.probes)
    assert _throughput(copy) == _throughput(RUNS[0])
    for p in data["probes"]:
        p["run_dir"] = "/gone/" + Path(p["run_dir"]).relative_to(RUNS[0].parent).as_posix()
    (copy / "capacity.json").write_text(json.dumps(data))
    assert _throughput(copy) == _throughput(RUNS[0])


def test_a_copied_calibration_resolves_its_runs_and_keeps_the_machine_they_ran_on(tmp_path):
    copy = tmp_path / "calibration"
    shutil.copytree(CALIBRATION, copy)
    _, data = load_calibration(copy / "vllm-cpu-smollm2-135m-instruct.json")
    assert [Path(r) for r in data["runs"]] == sorted((copy / "runs").iterdir())
    configs = [load_measured(r) for r in data["runs"]]
    assert recorded_hardware(configs).model_dump() == data["hardware"]  # the probe made where they were measured


def test_calibrating_recorded_runs_uses_their_host_probe_not_this_machine(tmp_path, monkeypatch, capsys):
    from infercost.projection import hardware

    def no_probe(*args, **kwargs):
        raise AssertionError("the host was probed: the runs record the machine they were measured on")

    monkeypatch.setattr(hardware, "host_cpu", no_probe)
    monkeypatch.setattr("infercost.provenance.hardware", lambda: {"cpu_model": "Other CPU", "cpu_usable_cores": 64,
                                                                  "ram_gib": 512.0, "gpus": []})
    copy = tmp_path / "runs"
    shutil.copytree(CALIBRATION / "runs", copy)
    for run in copy.iterdir():  # the model directory they name is on the machine that measured them
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["engine"]["model_dir"] = "/elsewhere/models/smollm2-135m-instruct"
        (run / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "cal" / "c.json"
    assert main(["calibrate", "--from", *map(str, sorted(copy.iterdir())), "-o", str(out), "--json"]) == 0
    capsys.readouterr()
    data = json.loads(out.read_text())
    committed = json.loads((CALIBRATION / "vllm-cpu-smollm2-135m-instruct.json").read_text())
    assert data["hardware"] == committed["hardware"] and data["machine"]["cpu_model"] == "AMD EPYC"
    assert data["runs"] == [f"../runs/{p.name}" for p in sorted(copy.iterdir())]
    for k in ("bandwidth", "compute", "step_overhead_s", "per_seq_overhead_s"):
        assert data["efficiency"][k] == pytest.approx(committed["efficiency"][k])


def test_runs_without_a_recorded_probe_are_probed_only_on_their_own_machine(tmp_path, monkeypatch, capsys):
    from infercost.projection import hardware

    copy = tmp_path / "runs"
    shutil.copytree(CALIBRATION / "runs", copy)
    for run in copy.iterdir():  # as measured before the probe was recorded with the runs
        manifest = json.loads((run / "manifest.json").read_text())
        probe = manifest.pop("host_probe")
        (run / "manifest.json").write_text(json.dumps(manifest))
    args = ["calibrate", "--from", *map(str, sorted(copy.iterdir())), "-o", str(tmp_path / "c.json"), "--json"]
    monkeypatch.setattr(hardware, "host_cpu", lambda refresh=False: hardware.Hardware.model_validate(probe))
    monkeypatch.setattr("infercost.provenance.hardware", lambda: {"cpu_model": "Other CPU", "cpu_usable_cores": 64,
                                                                  "ram_gib": 512.0, "gpus": []})
    assert main(args) == 2
    assert "measured on another machine (AMD EPYC, 2 cores)" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()
    monkeypatch.setattr("infercost.provenance.hardware", lambda: dict(manifest["hardware"]))
    assert main(args) == 0  # their own machine: probed now and recorded with them
    capsys.readouterr()
    assert all(json.loads((r / "manifest.json").read_text())["host_probe"] == probe for r in copy.iterdir())


def _workload():
    return Workload.model_validate({
        "name": "portable", "api": "completion", "prompts": {"source": "inline", "items": ["a", "b", "c"]},
        "sampling": {"max_tokens": 4}, "traffic": {"arrival": "poisson", "rate": 1.0, "num_requests": 6, "seed": 1},
        "slo": {"ttft_ms": {"p90": 2000}},
    })


def test_a_measured_capacity_stores_relative_paths_and_survives_a_move(tmp_path):
    workload = _workload()
    options = CapacityOptions(start=2, requests=6, min_duration_s=0, max_probes=2, precision=0.5)
    with stub_server(ttft_ms=5, itl_ms=1, tokens=4) as url:
        deployment = OpenAIDeployment(engine="openai", model="stub", base_url=url)
        result = asyncio.run(measure_capacity(workload, deployment, RunStore(tmp_path / "results"), options))
    assert result.capacity_rps and result.probes
    measured_in = Path(result.provenance["capacity_dir"])
    stored = json.loads((measured_in / "capacity.json").read_text())
    assert stored["provenance"]["capacity_dir"] == "."
    assert all(p["run_dir"].startswith("probes/") for p in stored["probes"])
    assert load_capacity(measured_in) == result
    before = _throughput(measured_in)
    moved = shutil.move(measured_in, tmp_path / "moved")
    assert _throughput(moved) == before and before["mean_output_tokens"] == 4
