"""The Python API as a notebook or pipeline uses it (in the style of Optuna's own tests): a study optimised,
recommended and reported in a few lines, from paths or from spec objects, with typed results. Projection studies
run here without an engine; the engine-backed `run` is in test_engines_real.py."""

import json
import subprocess
import sys

import pytest
import yaml

import infercost
from conftest import WORKLOADS
from infercost.errors import InputError
from infercost.search.recommendation import Recommendation
from infercost.search.results import StudyResult
from infercost.search.spec import StudySpec
from infercost.spec.loader import load_workload

GPU_STUDY = WORKLOADS / "studies" / "gpu-placement.yaml"


@pytest.fixture(scope="module")
def found(tmp_path_factory) -> StudyResult:
    results = tmp_path_factory.mktemp("api")
    return infercost.optimize(GPU_STUDY, n_trials=8, results_dir=results)


def test_optimize_then_recommend_then_report_in_three_lines(found, tmp_path):
    assert isinstance(found, StudyResult) and found.trials == 8 and found.feasible >= 1
    rec = infercost.recommend(found)
    paths = infercost.report(rec, tmp_path / "report")

    assert isinstance(rec, Recommendation)
    winner = rec.winner
    assert winner is not None and winner.monthly_cost == found.winner.objective  # the study minimised the bill
    assert winner.cost_per_1k_requests == found.winner.cost.cost_per_1k_requests
    assert winner.label == found.best[0].config and winner.kind == "projected" and winner.expected_error == 0.4
    # every alternative costs more and says by how much; every other trial says why it lost
    for alt in rec.alternatives:
        assert alt.cost_per_1k_requests >= winner.cost_per_1k_requests and "more per month at this demand" in alt.why_not
    assert {r.trial for r in rec.rejected} | {t.trial for t in rec.all_trials if t.status == "feasible"} == \
        {t.trial for t in rec.all_trials}
    assert all(r.reason for r in rec.rejected)
    assert rec.evidence.kind == "projected" and "expected error" in rec.evidence.efficiency
    # the report is the Recommendation rendered: its JSON is the object's, figure for figure
    data = json.loads(paths["json"].read_text())
    assert data["recommendation"]["cost_per_1k_requests"] == winner.cost_per_1k_requests
    assert data["trials"] == {"total": 8, "feasible": found.feasible}
    assert set(paths) == {"json", "md", "html", "focus", "volume_chart"} and all(p.is_file() for p in paths.values())
    assert data["build_or_buy"]["choice"] in ("build", "buy") and data["build_or_buy"]["curves"]


def test_spec_objects_work_as_well_as_paths_and_a_rerun_resumes(found, tmp_path):
    spec = StudySpec.model_validate(yaml.safe_load(GPU_STUDY.read_text()) | {"name": "from-objects", "n_trials": 4})
    workload = load_workload(WORKLOADS / "chat-support.yaml")
    first = infercost.optimize(spec, workload=workload, results_dir=tmp_path)
    again = infercost.optimize(spec, workload=workload, results_dir=tmp_path)
    assert first.trials == again.trials == 4 and first.storage == again.storage
    assert [b.trial for b in first.best] == [b.trial for b in again.best]
    # the same space and seed as the path-loaded study: its first trials are the same configurations
    cols = ["model", "precision", "max_num_seqs", "hardware", "devices", "pricing", "status"]
    assert first.trials_frame()[cols].values.tolist() == found.trials_frame()[cols].head(4).values.tolist()
    # a stored study is recommended from its file and storage alone, in a new process's way (no StudyResult)
    rec = infercost.recommend(spec, workload=workload, results_dir=tmp_path)
    assert rec.winner.trial == first.best[0].trial


def test_project_returns_a_typed_projection_with_costs(tmp_path):
    projection = infercost.project(WORKLOADS / "chat-support.yaml", hardware="L4", model="llama-3.1-8b")
    assert projection.capacity.kind == "projected" and projection.capacity.capacity_rps > 0
    assert projection.cost and all(r.kind == "projected" for r in projection.cost)
    costs = [r.cost_per_1k_requests for r in projection.cost]
    assert costs == sorted(costs)
    assert "expected error +-40%" in projection.cost[0].capacity_basis
    assert json.loads(json.dumps(projection.to_json()))["capacity"]["capacity_rps"] == projection.capacity.capacity_rps
    unpriced = infercost.project(WORKLOADS / "chat-support.yaml", {"engine": "vllm", "model": "llama-3.1-8b"},
                                 hardware="L4", price=False)
    assert unpriced.cost == [] and unpriced.capacity.capacity_rps == projection.capacity.capacity_rps


def test_bad_input_raises_input_error_naming_file_and_field(tmp_path):
    study = yaml.safe_load(GPU_STUDY.read_text())
    study["n_trails"] = 3
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(InputError) as err:
        infercost.optimize(path)
    assert str(err.value) == f"{path}: n_trails: unknown field; did you mean 'n_trials'?"
    with pytest.raises(InputError, match="max_num_seqs"):
        infercost.run(WORKLOADS / "chat-support.yaml", {"engine": "vllm", "model": "smollm2-135m-instruct",
                                                        "max_num_seqs": 0})


def test_import_is_light_and_pipeline_packages_stay_callable():
    code = ("import sys, infercost; heavy = [m for m in ('torch', 'vllm', 'optuna', 'transformers') if m in "
            "sys.modules]; import infercost.report.render, infercost.capacity.result; "
            "print(heavy, callable(infercost.report), callable(infercost.capacity), callable(infercost.optimize))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] True True True"
