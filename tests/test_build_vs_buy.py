"""Build versus buy in one study: quality scored through an endpoint that serves a model which cannot run here,
hosted APIs as candidates priced per token, the verdict with its cross-over volume, and the faults around them
(an unreachable endpoint, an API or vendor not in the catalog, no key). The real parts: a vLLM OpenAI server on
loopback serving the bundled model plays both the GPU box that answers for a projected placement and a vendor API
priced from a test catalog row."""

import json
import secrets
from pathlib import Path

import pytest
import yaml

from infercost import api
from infercost.cli.main import main
from infercost.loadgen.stub_server import free_port

from conftest import WORKLOADS

KEY_ENV = "INFERCOST_TEST_VENDOR_KEY"


def study_file(tmp_path: Path, **changes) -> Path:
    data = {
        "name": "bvb", "workload": str(WORKLOADS / "chat-support.yaml"), "mode": "project",
        "space": {"models": ["smollm2-135m-instruct"], "engines": ["vllm"], "precisions": {"vllm": ["float32"]},
                  "max_num_seqs": [16], "placements": {"hardware": ["L4"], "pricing": ["on_demand"]}},
        "constraints": {"quality": True, "budget": False}, "capacity": {"precision": 0.2},
        "sampler": "grid", "n_trials": 1,
    }
    for key, value in changes.items():
        node, *path = key.split(".")
        target = data
        for part in [node, *path][:-1]:
            target = target.setdefault(part, {})
        target[[node, *path][-1]] = value
    data["n_trials"] = len(data["space"].get("apis", [])) + 1
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def outcomes_by_kind(found):
    from infercost.search.study import outcomes

    out = {}
    for _, o in outcomes(found.optuna_study):
        out.setdefault(o.kind or o.status, []).append(o)
    return out


def catalog_row(tmp_path: Path, base_url: str, rpm: int = 600) -> Path:
    path = tmp_path / "vendor.csv"
    path.write_text("provider,model,input_per_1m,output_per_1m,source,as_of,base_url,api_key_env,requests_per_minute\n"
                    f"loopback,smollm2,0.05,0.08,test row,2026-11-01,{base_url},{KEY_ENV},{rpm}\n")
    return path


# --------------------------------------------------------------------------- bad input and faults (no engine)


@pytest.mark.parametrize("name, expected", [
    ("nosuch/model-x", "unknown API vendor 'nosuch': the catalog has anthropic, fireworks, google, groq"),
    ("groq/llama-9", "unknown API model 'groq/llama-9': the catalog has groq/llama-3.1-8b-instant, "
                     "groq/llama-3.3-70b-versatile"),
])
def test_an_api_not_in_the_catalog_is_one_line_with_the_known_names(tmp_path, capsys, name, expected):
    path = study_file(tmp_path, **{"space.apis": [name]})
    code = main(["optimize", str(path), "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0, err
    assert str(path) in err and "space.apis[0]" in err and expected in err, err


@pytest.mark.parametrize("changes, expected", [
    ({"quality_sources": [{"model": "llama-3.1-8b", "base_url": "http://h:8000/v1", "served_model": "m"}]},
     "quality_sources[0]: model 'llama-3.1-8b' is not in space.models (smollm2-135m-instruct)"),
    ({"quality_sources": [{"model": "smollm2-135m-instruct", "precision": "awq", "base_url": "http://h:8000/v1",
                           "served_model": "m"}]}, "precision 'awq' is not searched: expected one of float32"),
    ({"quality_sources": [{"model": "smollm2-135m-instruct", "base_url": "gpu-box:8000", "served_model": "m"}]},
     "base_url"),
    ({"quality_sources": [{"model": "smollm2-135m-instruct", "base_url": "http://h/v1", "served_model": "m",
                           "api_key_env": "sk-abcdefghijklmnopqrstuvwxyz012345"}]}, "not the key itself"),
    ({"space.apis": ["groq/llama-3.1-8b-instant", "groq/llama-3.1-8b-instant"]}, "listed twice"),
    ({"space.apis": ["gpt-4o-mini"]}, "space.apis[0].name: expected vendor/model as in the catalog's token prices"),
])
def test_bad_sources_and_apis_are_one_line(tmp_path, capsys, changes, expected):
    path = study_file(tmp_path, **changes)
    code = main(["optimize", str(path), "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and str(path) in err and expected in err, err
    assert "sk-abcdefghijklmnopqrstuvwxyz012345" not in err


def test_an_unreachable_quality_endpoint_is_one_line_and_the_study_goes_on(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    path = study_file(tmp_path, **{"space.max_num_seqs": [16, 64], "quality_sources": [
        {"model": "smollm2-135m-instruct", "base_url": url, "served_model": "smollm2"}]})
    found = api.optimize(path, results_dir=tmp_path / "results", n_trials=2)
    projected = outcomes_by_kind(found)["projected"]
    assert len(projected) == 2  # both trials ran to the end
    for o in projected:
        assert o.quality_source == f"quality not measured: connection refused at {url}"
        assert o.status == "infeasible" and o.reason == f"violates quality (quality not measured: connection " \
                                                        f"refused at {url})"


def test_without_a_source_the_report_names_the_measurement_that_settles_it(tmp_path):
    path = study_file(tmp_path)
    found = api.optimize(path, results_dir=tmp_path / "results")
    rec = api.recommend(found)
    assert rec.winner is None  # a quality bar nothing checked is not met
    [u] = rec.quality_unverified
    assert u.settle_with.startswith("infercost quality ") and "--set engine=vllm --set model=smollm2-135m-instruct" \
        in u.settle_with and "--set dtype=float32" in u.settle_with and "--endpoint http://HOST:PORT/v1" \
        in u.settle_with and str(tmp_path / "results" / "studies" / "bvb" / "quality-cache") in u.settle_with
    md = api.report(rec, tmp_path / "report")["md"].read_text()
    assert "## Quality not checked" in md and u.settle_with in md


def test_a_saving_over_an_unchecked_quality_bar_is_not_claimed(tmp_path):
    path = study_file(tmp_path, **{"constraints.quality": False, "space.max_num_seqs": [16, 256], "baseline": {
        "deployment": {"engine": "vllm", "model": "smollm2-135m-instruct", "dtype": "float32", "max_num_seqs": 16},
        "hardware": "L4"}})
    found = api.optimize(path, results_dir=tmp_path / "results", n_trials=2)
    w = api.recommend(found).winner
    assert w.quality_met is None and w.savings_vs_baseline is None
    assert w.savings_withheld.startswith("its quality was not checked against the workload's target")
    assert w.quality_settle_with and "--endpoint" in w.quality_settle_with
    md = api.report(api.recommend(found), tmp_path / "report")["md"].read_text()
    assert "cheaper** than the baseline" not in md and "**no saving is claimed**" in md


def test_an_api_without_a_key_is_priced_only_and_labelled(tmp_path, monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    path = study_file(tmp_path, **{"constraints.quality": False, "space.apis": ["groq/llama-3.1-8b-instant"]})
    found = api.optimize(path, results_dir=tmp_path / "results")
    [o] = outcomes_by_kind(found)["api"]
    # cost from the workload's token counts at the catalog's prices, by hand
    from infercost.projection.project import workload_lengths
    from infercost.spec import load_workload

    lengths = workload_lengths(load_workload(WORKLOADS / "chat-support.yaml"))
    mean_in, mean_out = sum(lengths.prompt) / len(lengths.prompt), sum(lengths.output) / len(lengths.output)
    assert o.cost.cost_per_1k_requests == pytest.approx((mean_in * 0.05 + mean_out * 0.08) / 1e6 * 1000)
    assert o.latency_measured is False
    assert o.capacity_rps == pytest.approx(30 / 60)  # the catalog's 30 requests/min is its capacity
    assert o.reason.startswith("violates slo, rate_limit (latency not measured: no API key: set GROQ_API_KEY")
    assert "the peak of 3.09 req/s is above the rate limit 30 requests/min" in o.reason
    b = api.recommend(found).build_or_buy
    assert b.choice == "build" and b.best_api is None and b.apis[0].status == "infeasible"
    assert b.crossover_against == "groq/llama-3.1-8b-instant (not verified: cost only)"
    assert b.crossover_note and b.curves and b.demand_requests_per_day == pytest.approx(150000)


def test_a_vendor_that_rate_limits_is_retried_and_its_limit_becomes_its_capacity(tmp_path, monkeypatch):
    """The vendor is the stub (a fake): a real server cannot be made to answer 429 on demand."""
    from infercost.loadgen.stub_server import stub_server

    monkeypatch.setenv(KEY_ENV, "sk-stub-" + secrets.token_hex(8))
    with stub_server(tokens=4, rate_limit_rps=1, retry_after_s=0.2) as url:
        csv = tmp_path / "vendor.csv"
        csv.write_text("provider,model,input_per_1m,output_per_1m,source,as_of,base_url,api_key_env\n"
                       f"stubvendor,stub,0.05,0.08,test row,2026-11-01,{url},{KEY_ENV}\n")
        path = study_file(tmp_path, **{"constraints.quality": False, "space.apis": ["stubvendor/stub"]})
        found = api.optimize(path, results_dir=tmp_path / "results", catalog=[csv])
    [o] = outcomes_by_kind(found)["api"]
    manifest = json.loads((Path(o.evidence) / "manifest.json").read_text())
    limited = manifest["engine"]["rate_limited"]
    assert limited["responses_429"] > 0 and limited["retries"] > 0
    assert o.capacity_rps == pytest.approx(limited["min_accepted_rps_at_429"])
    assert o.capacity_rps == pytest.approx(1.0, abs=0.5)  # the stub accepts one request a second
    assert o.capacity_basis.startswith("rate limit met while measuring: 429s at")
    assert o.status == "infeasible"  # 2 req/s offered against 1 accepted: the SLO or the peak breaks


# --------------------------------------------------------------------------- the real loopback server


def _no_secret_under(root: Path, secret: str) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f"the API key leaked into {f}"


def test_quality_through_an_endpoint_and_an_api_candidate_on_the_loopback_server(vllm_server, tmp_path, monkeypatch,
                                                                                 capfd):
    key = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    results = tmp_path / "results"
    # the shipped study, its endpoint pointed at the loopback server and its space cut to one placement
    path = WORKLOADS / "studies" / "build-vs-buy.yaml"
    overrides = [f"quality_sources=[{{model: smollm2-135m-instruct, precision: float32, base_url: '{vllm_server}', "
                 f"served_model: smollm2, api_key_env: {KEY_ENV}}}]",
                 "space.apis=[loopback/smollm2, groq/llama-3.1-8b-instant]", "space.max_num_seqs=[16]",
                 "space.placements.hardware=[L4]", "space.placements.pricing=[on_demand]", "n_trials=3",
                 "name=bvb"]
    found = api.optimize(path, study_overrides=overrides, results_dir=results,
                         catalog=[catalog_row(tmp_path, vllm_server)])
    by_kind = outcomes_by_kind(found)

    # the projected GPU placement: quality scored from the endpoint's answers, cached under the trial's own key
    [gpu] = by_kind["projected"]
    assert gpu.quality_met is not None and gpu.quality_score is not None
    assert gpu.quality_source == f"answers generated from endpoint {vllm_server} (served model smollm2) (20/20 prompts)"
    entries = [json.loads(f.read_text()) for f in (results / "studies" / "bvb" / "quality-cache").glob("*.json")]
    [entry] = [e for e in entries if e["identity"]["deployment"]["engine"] == "vllm"]
    assert entry["identity"]["deployment"]["model"] == "smollm2-135m-instruct"
    assert entry["identity"]["deployment"]["dtype"] == "float32"
    assert vllm_server in entry["source"]

    # the vendor API: measured through its endpoint, priced at its measured tokens, its rate limit as capacity
    loop = next(o for o in by_kind["api"] if o.config.model == "loopback/smollm2")
    assert loop.latency_measured and loop.ttft_p95_ms is not None and loop.capacity_rps == pytest.approx(10.0)
    summary = json.loads((Path(loop.evidence) / "summary.json").read_text())
    assert loop.cost.mean_input_tokens == pytest.approx(summary["mean_input_tokens"])
    assert loop.cost.cost_per_1k_requests == pytest.approx(
        (summary["mean_input_tokens"] * 0.05 + summary["mean_output_tokens"] * 0.08) / 1e3)
    assert loop.quality_met is not None and vllm_server in loop.quality_source
    groq = next(o for o in by_kind["api"] if o.config.model.startswith("groq/"))
    assert groq.latency_measured is False and "no API key: set GROQ_API_KEY" in groq.reason

    rec = api.recommend(found, catalog=[catalog_row(tmp_path, vllm_server)])
    b = rec.build_or_buy
    assert b.choice in ("build", "buy", "none") and b.verdict
    assert b.best_self_hosted is None or b.best_self_hosted.kind == "projected"
    if gpu.status == "feasible" and loop.status == "feasible":  # compared on the monthly bill at the demand
        cheaper = "build" if gpu.cost.monthly_cost <= loop.cost.monthly_cost else "buy"
        assert b.choice == cheaper and b.basis == "per month at this workload's demand"
        assert b.crossover_against == "loopback/smollm2" and b.crossover_note
    paths = api.report(rec, results / "report")
    html = paths["html"].read_text()
    assert 'id="build-or-buy"' in html and "<svg" in html
    out, err = capfd.readouterr()
    assert key not in out and key not in err
    _no_secret_under(results, key)
    _no_secret_under(tmp_path, key)


def test_the_settle_command_measures_quality_and_the_study_rejudges(vllm_server, tmp_path):
    results = tmp_path / "results"
    path = study_file(tmp_path)
    found = api.optimize(path, results_dir=results)
    [u] = api.recommend(found).quality_unverified
    argv = u.settle_with.replace("http://HOST:PORT/v1", vllm_server).replace("NAME", "smollm2").split()[1:]
    assert main([*argv, "--results-dir", str(results)]) in (0, 1)  # 1: measured, target not met
    again = api.optimize(path, results_dir=results)
    trials = again.optuna_study.get_trials()
    assert len(trials) == 2 and trials[1].user_attrs.get("quality_rejudged")
    from infercost.search.evaluate import TrialOutcome

    rejudged = TrialOutcome.model_validate(trials[1].user_attrs["outcome"])
    assert rejudged.quality_met is not None
    assert rejudged.quality_source == f"answers cached from endpoint {vllm_server} (served model smollm2) (20/20 prompts)"
    assert api.recommend(again).quality_unverified == [] or not rejudged.quality_met
    # a third run finds nothing new to judge
    third = api.optimize(path, results_dir=results)
    assert len(third.optuna_study.get_trials()) == 2
