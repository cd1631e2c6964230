"""The Optuna search in project mode (fast: every trial is a simulation): the space and its conditional
parameters, screening with reasons, the budget spent on distinct configurations only, the best configuration against
exhaustive enumeration, resume after a worker is killed, and two workers sharing one storage. The measured search on
the CPU is in test_search_real."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from infercost.cost.catalog import load_catalog
from infercost.search.evaluate import Evaluator
from infercost.search.results import summary, trials_frame
from infercost.search.space import enumerate_space
from infercost.search.study import STALL, evaluated_trials, is_repeat, open_study, run_study, storage_for
from infercost.spec import load_workload
from infercost.store import RunStore

from conftest import WORKLOADS

STUDY = {
    "name": "t", "workload": str(WORKLOADS / "chat-support.yaml"), "mode": "project",
    "space": {"models": ["llama-3.1-8b", "llama-3.1-70b"], "engines": ["vllm"],
              "precisions": {"vllm": ["bfloat16", "fp8"]}, "max_num_seqs": [32, 128],
              "placements": {"hardware": ["H100-SXM", "A100-80GB", "L4"], "devices": [1, 2],
                             "pricing": ["on_demand"]}},
    "constraints": {"quality": False, "budget": False},
    "baseline": {"deployment": {"engine": "vllm", "model": "llama-3.1-70b", "dtype": "bfloat16",
                                "max_num_seqs": 128}, "hardware": "H100-SXM", "devices": 2},
    "capacity": {"precision": 0.2}, "sampler": "tpe", "n_trials": 12, "seed": 1,
}


def write_spec(tmp_path, **changes) -> Path:
    data = json.loads(json.dumps(STUDY))
    for key, value in changes.items():
        data[key] = value
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def spec_and_evaluator(tmp_path, **changes):
    from infercost.api import study_of

    spec = study_of(str(write_spec(tmp_path, **changes)))
    workload = load_workload(spec.resolve(spec.workload))
    return spec, Evaluator(spec, workload, RunStore(tmp_path / "runs"), load_catalog())


def test_space_is_conditional_and_enumerable(tmp_path):
    spec, _ = spec_and_evaluator(tmp_path)
    configs = enumerate_space(spec)
    assert len(configs) == 2 * 2 * 2 * 3 * 2  # models x precisions x seqs x hardware x devices
    assert len({c.key() for c in configs}) == len(configs)
    d = configs[0].deployment({"kv_cache_memory": "1GiB", "device": "cpu"})
    assert d["engine"] == "vllm" and "device" not in d  # fixed fields apply only to engines that have them


def test_screening_rejects_with_reasons(tmp_path):
    spec, ev = spec_and_evaluator(tmp_path)
    by = {(c.model, c.precision, c.hardware, c.devices): c for c in enumerate_space(spec)}
    import asyncio

    big = asyncio.run(ev.evaluate(by[("llama-3.1-70b", "bfloat16", "L4", 1)]))
    assert big.status == "rejected" and "does not fit" in big.reason
    fp8 = asyncio.run(ev.evaluate(by[("llama-3.1-8b", "fp8", "A100-80GB", 1)]))
    assert fp8.status == "rejected" and "fp8" in fp8.reason
    ok = asyncio.run(ev.evaluate(by[("llama-3.1-8b", "bfloat16", "H100-SXM", 1)]))
    assert ok.status == "feasible" and ok.kind == "projected" and ok.cost.accelerator == "H100-SXM"
    assert ok.objective == ok.cost.monthly_cost and ok.expected_error > 0  # the bill at the workload's demand


def test_grid_study_finds_the_exhaustive_optimum_and_reuses_nothing(tmp_path):
    spec, ev = spec_and_evaluator(tmp_path, sampler="grid", n_trials=48)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = run_study(spec, ev, storage)
    frame = trials_frame(study)
    # 48 configurations less the 8 on two L4s, which no catalog offer hosts: the whole space, each once
    assert len(enumerate_space(spec, ev.pricing_offered)) == 40
    assert len(frame) == 40 and len(study.get_trials()) == 40 and frame["reused_from"].isna().all()
    feasible = frame[frame["status"] == "feasible"]
    result = summary(study)
    assert result["best"][0]["outcome"]["objective"] == pytest.approx(feasible["monthly_cost"].min())
    assert (frame["status"] == "rejected").any() and frame.loc[frame["status"] == "rejected", "reason"].notna().all()


TINY = {**STUDY["space"], "models": ["llama-3.1-8b", "llama-3.1-70b"], "max_num_seqs": [64],
        "precisions": {"vllm": ["bfloat16"]}, "apis": ["groq/llama-3.1-8b-instant"],
        "placements": {"hardware": ["H100-SXM"], "devices": [1], "pricing": ["on_demand"]}}


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_space_smaller_than_the_budget_is_evaluated_once_and_the_study_ends(tmp_path, sampler):
    """Three configurations (two models on one H100, and an API whatever `model` is drawn with it) and a budget of
    20: each evaluated once, every other proposal answered from the study, and the study ends once the sampler has
    proposed only evaluated configurations STALL times in a row and none is left to queue."""
    spec, ev = spec_and_evaluator(tmp_path, sampler=sampler, n_trials=20, baseline=None, space=TINY)
    calls = []
    original = ev.evaluate

    async def counting(cfg):
        calls.append(cfg.key())
        return await original(cfg)

    ev.evaluate = counting
    study = run_study(spec, ev, f"sqlite:///{tmp_path / 's.db'}")
    space = sorted(c.key() for c in enumerate_space(spec, ev.pricing_offered))
    assert len(space) == 3 and sorted(calls) == space  # each configuration evaluated once
    frame = trials_frame(study)
    assert sorted(frame["trial"].map(lambda n: study.trials[n].user_attrs["config_key"])) == space
    trials = study.get_trials()
    evaluated = {t.user_attrs["config_key"]: t for t in evaluated_trials(study)}
    for t in trials:
        if is_repeat(t):  # answered with the evaluated trial's outcome and value
            first = evaluated[t.user_attrs["config_key"]]
            assert t.user_attrs["reused_from"] == first.number and t.values == first.values
    assert all(is_repeat(t) for t in trials[-STALL:])
    assert summary(study)["trials"] == 3 and summary(study)["answered_from_study"] == len(trials) - 3


def _worker(spec_path: Path, storage: str, tmp_path: Path, n_trials: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "infercost", "optimize", str(spec_path), "--storage", storage, "--quiet", "--json",
         "--n-trials", str(n_trials), "--results-dir", str(tmp_path / "res")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(storage: str, name: str = "t") -> list:
    study = optuna.load_study(study_name=name, storage=storage_for(storage))
    return [t for t in study.get_trials() if t.state in (optuna.trial.TrialState.COMPLETE,
                                                         optuna.trial.TrialState.PRUNED)]


def test_resume_after_sigkill_loses_and_repeats_no_completed_trial(tmp_path):
    spec_path = write_spec(tmp_path, n_trials=40)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    worker = _worker(spec_path, storage, tmp_path, 40)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            if len(_finished(storage)) >= 6:
                break
        except Exception:
            pass  # the study is not created yet
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = {t.number: (t.state, t.values, t.user_attrs.get("config_key")) for t in _finished(storage)}
    assert 6 <= len([t for t in _finished(storage) if not is_repeat(t)]) < 40
    time.sleep(7)  # past the heartbeat grace period: the killed worker's running trial is stale
    resumed = _worker(spec_path, storage, tmp_path, 40)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode in (0, 1), err
    after = _finished(storage)
    numbers = [t.number for t in after]
    # the space after the catalog holds 40 configurations (no offer hosts two L4s): the budget buys all of them
    assert len(numbers) == len(set(numbers)) and len([t for t in after if not is_repeat(t)]) == 40
    for t in after:  # every trial completed before the kill is still there, unchanged
        if t.number in before:
            assert (t.state, t.values, t.user_attrs.get("config_key")) == before[t.number]
    study = optuna.load_study(study_name="t", storage=storage_for(storage))
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.get_trials())
    evaluated = [t.user_attrs["config_key"] for t in after if not is_repeat(t)]
    assert len(evaluated) == len(set(evaluated)) == 40  # no configuration was evaluated twice


def _two_workers(tmp_path, storage: str) -> None:
    spec_path = write_spec(tmp_path, n_trials=24, sampler="random")
    workers = [_worker(spec_path, storage, tmp_path, 24) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode in (0, 1), err
    after = _finished(storage)
    numbers = [t.number for t in after]
    assert len(numbers) == len(set(numbers))
    evaluated = [t.user_attrs["config_key"] for t in after if not is_repeat(t)]
    # each worker stops once 24 are evaluated; one may be in flight at that moment. A proposal of a configuration
    # the other worker is evaluating waits for its outcome: none is evaluated twice
    assert 24 <= len(evaluated) <= 25 and len(evaluated) == len(set(evaluated))
    study = optuna.load_study(study_name="t", storage=storage_for(storage))
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.get_trials())
    assert all("outcome" in t.user_attrs for t in after)


def test_two_workers_share_one_sqlite_study(tmp_path):
    _two_workers(tmp_path, f"sqlite:///{tmp_path / 's.db'}")


@pytest.mark.skipif(not os.environ.get("INFERCOST_TEST_POSTGRES"), reason="set INFERCOST_TEST_POSTGRES to a "
                    "PostgreSQL URL (.ci/run starts a server and sets it)")
def test_two_workers_share_one_postgresql_study(tmp_path):
    url = os.environ["INFERCOST_TEST_POSTGRES"]
    try:
        optuna.delete_study(study_name="t", storage=storage_for(url))
    except KeyError:
        pass
    _two_workers(tmp_path, url)


def test_multi_objective_study_returns_a_pareto_front(tmp_path):
    spec, ev = spec_and_evaluator(tmp_path, multi_objective=True, n_trials=16)
    assert spec.sampler == "nsga2"
    study = run_study(spec, ev, f"sqlite:///{tmp_path / 's.db'}")
    assert len(study.directions) == 3
    front = summary(study)["best"]
    assert front
    costs = [f["outcome"]["objective"] for f in front]
    ttfts = [f["outcome"]["ttft_p95_ms"] for f in front]
    assert costs == sorted(costs)
    for i in range(1, len(front)):  # along the front, paying more buys lower latency (or equal cost)
        assert ttfts[i] <= ttfts[i - 1] or costs[i] == costs[i - 1]


def test_pareto_front_counts_a_missing_figure_as_the_worst_on_its_axis():
    from infercost.search.evaluate import TrialOutcome
    from infercost.search.space import TrialConfig
    from infercost.search.study import pareto_front

    cfg = TrialConfig(model="m", engine="vllm", precision="bfloat16", max_num_seqs=8)

    def o(cost, ttft, quality=0.9):
        return TrialOutcome(config=cfg, status="feasible", objective=cost, ttft_p95_ms=ttft, quality_score=quality)

    rows = [("cheapest, no TTFT", o(1.0, None)), ("fast", o(2.0, 100.0)), ("slow", o(3.0, 500.0)),
            ("dear, no TTFT", o(4.0, None)), ("fast, no quality", o(2.0, 100.0, None)), ("same as fast", o(2.0, 100.0))]
    # read as 0 ms (the report's old rule), the cheapest would have dominated every other configuration
    assert [name for name, _ in pareto_front(rows)] == ["cheapest, no TTFT", "fast", "same as fast"]


def test_baseline_takes_the_engine_s_defaults_for_fields_it_leaves_out():
    from infercost.search.results import baseline_config
    from infercost.search.spec import Baseline
    from infercost.spec.loader import deployment_adapter, validate

    for deployment in ({"engine": "vllm", "model": "llama-3.1-8b", "dtype": "bfloat16"},
                       {"engine": "transformers", "model": "smollm2-135m"}):
        cfg = baseline_config(Baseline(deployment=deployment, hardware="H100-SXM"))
        as_written = validate(deployment_adapter(), deployment, source="test")
        assert cfg.max_num_seqs == as_written.max_num_seqs  # vLLM 256, transformers 8: the deployment models' own
        assert cfg.enable_prefix_caching == as_written.enable_prefix_caching
        assert validate(deployment_adapter(), cfg.deployment({}), source="test").max_num_seqs == cfg.max_num_seqs
    from infercost.errors import InputError

    with pytest.raises(InputError, match="cannot be a baseline"):  # no search engine runs it
        baseline_config(Baseline(deployment={"engine": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"}))


def test_a_worker_killed_before_its_first_heartbeat_is_recovered(tmp_path):
    """Optuna's stale-trial check skips a RUNNING trial with no heartbeat at all (its worker died between creating
    the trial and the first heartbeat); the study fails it once it is older than the grace period."""
    import datetime

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    from infercost.search.study import _recover_stale

    storage = storage_for(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(study_name="x", storage=storage)
    dist = {"a": optuna.distributions.CategoricalDistribution([1, 2])}
    dead, alive = study.ask(dist), study.ask(dist)  # no heartbeat thread: neither has a heartbeat
    with _create_scoped_session(storage.scoped_session, True) as session:
        row = session.query(models.TrialModel).filter(models.TrialModel.trial_id == dead._trial_id).one()
        row.datetime_start = datetime.datetime.now() - datetime.timedelta(seconds=60)
    _recover_stale(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[dead.number] == optuna.trial.TrialState.FAIL
    assert states[alive.number] == optuna.trial.TrialState.RUNNING  # just started: not judged dead
