"""Where a search starts and how fast a projected trial is: the warm start from the closed-form ranking (queued
first, kept by a study resumed after SIGKILL), the exhaustive sampler (every configuration once, also with two
processes on one storage), pricing before projecting, and the simulation shortcuts (decode-only steps fast-forwarded,
a probe ended once its TTFT bound is lost) giving the figures the step-by-step simulation gives."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import optuna
import pytest

from infercost.loadgen.schedule import arrival_offsets
from infercost.projection.hardware import accelerators
from infercost.projection.shape import load_shape
from infercost.projection.simulate import SchedulerConfig, SimRequest, simulate
from infercost.projection.steptime import DEFAULT_GPU, StepModel
from infercost.search.space import enumerate_space
from infercost.search.study import is_repeat, run_study, storage_for
from infercost.search.warm_start import ranked, warm_start_size

from test_search import spec_and_evaluator, write_spec


def test_the_study_starts_with_the_configurations_the_estimate_ranks_cheapest(tmp_path):
    spec, evaluator = spec_and_evaluator(tmp_path, n_trials=20, baseline=None)
    ranking = ranked(spec, evaluator)
    k = warm_start_size(spec, len(enumerate_space(spec)))
    assert k == 4 and len(ranking) > k
    assert [c for c, _ in ranking] == sorted(c for c, _ in ranking)  # cheapest estimate first
    study = run_study(spec, evaluator, f"sqlite:///{tmp_path / 's.db'}")
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    first = [t.user_attrs["config_key"] for t in trials[:k]]
    assert first == [cfg.key() for _, cfg in ranking[:k]]  # evaluated first, in rank order
    assert [t.user_attrs.get("warm_start") for t in trials[:k]] == list(range(k))
    assert study.user_attrs["warm_start"]["configurations"] == first
    assert all("warm_start" not in t.user_attrs for t in trials[k:])  # then the sampler chooses


def test_without_warm_start_the_sampler_chooses_from_the_first_trial(tmp_path):
    spec, evaluator = spec_and_evaluator(tmp_path, n_trials=6, baseline=None, warm_start=False)
    study = run_study(spec, evaluator, f"sqlite:///{tmp_path / 's.db'}")
    assert not any("warm_start" in t.user_attrs for t in study.get_trials())
    assert "warm_start" not in study.user_attrs


def test_a_study_killed_during_its_warm_start_keeps_it_when_resumed(tmp_path):
    path = write_spec(tmp_path, n_trials=40, baseline=None)  # warm start: the first 8
    storage = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [sys.executable, "-m", "infercost", "optimize", str(path), "--storage", storage, "--quiet", "--json",
           "--results-dir", str(tmp_path / "res")]
    worker = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def done():
        try:
            study = optuna.load_study(study_name="t", storage=storage_for(storage))
        except Exception:
            return []
        return [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]

    deadline = time.monotonic() + 240
    while len(done()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    study = optuna.load_study(study_name="t", storage=storage_for(storage))
    queued = study.user_attrs["warm_start"]["configurations"]
    assert len(queued) == 8 and 3 <= len(done()) < 8  # killed inside the warm start
    time.sleep(7)  # past the heartbeat grace period
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode in (0, 1), out.stderr
    study = optuna.load_study(study_name="t", storage=storage_for(storage))
    assert study.user_attrs["warm_start"]["configurations"] == queued  # not ranked and queued again
    finished = [t for t in study.get_trials() if t.state in (optuna.trial.TrialState.COMPLETE,
                                                              optuna.trial.TrialState.PRUNED)]
    warm = [t.user_attrs["config_key"] for t in finished if "warm_start" in t.user_attrs]
    assert sorted(warm) == sorted(queued)  # each warm-start configuration evaluated once: none lost, none twice
    assert len([t for t in finished if not is_repeat(t)]) == 40


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_exhaustive_sampler_evaluates_every_configuration_once(tmp_path, jobs):
    from infercost import api

    spec, evaluator = spec_and_evaluator(tmp_path, sampler="grid", n_trials=48, baseline=None)
    space = enumerate_space(spec, evaluator.pricing_offered)
    assert len(space) == 40  # 48 less the 8 on two L4s, which no catalog offer hosts
    found = api.optimize(spec, storage=f"sqlite:///{tmp_path / 's.db'}", results_dir=tmp_path, jobs=jobs)
    trials = [t for t in found.optuna_study.get_trials() if t.state != optuna.trial.TrialState.FAIL]
    keys = [t.user_attrs["config_key"] for t in trials]
    assert sorted(keys) == sorted(c.key() for c in space)  # each once, whatever the processes, and then it ends
    assert all(len(str(t.distributions)) < 200 for t in trials)  # one integer, not the grid, stored per trial


def test_an_exhaustive_trial_is_stored_as_an_asked_and_told_one_is(tmp_path):
    """A projected exhaustive study writes each trial whole: the same attributes, constraint, values and state as the
    same configuration evaluated through Optuna's ask and tell; a study resumed with more trials evaluates only the
    configurations it has not."""
    from infercost import api

    path = write_spec(tmp_path, sampler="grid", n_trials=20, baseline=None)
    spec = api.study_of(str(path))
    storage = f"sqlite:///{tmp_path / 'grid.db'}"
    first = api.optimize(spec, storage=storage, results_dir=tmp_path)
    assert len(first.optuna_study.get_trials()) == 20
    whole = {t.user_attrs["config_key"]: t for t in
             api.optimize(spec.model_copy(update={"n_trials": 48}), storage=storage,
                          results_dir=tmp_path).optuna_study.get_trials()}
    assert len(whole) == 40  # the 20 kept, then the other 20 the catalog prices, none twice
    told_dir = tmp_path / "told"
    told_dir.mkdir()
    told = run_study(spec.model_copy(update={"sampler": "random", "n_trials": 12, "warm_start": False}),
                     spec_and_evaluator(told_dir, n_trials=12, baseline=None)[1],
                     f"sqlite:///{tmp_path / 'told.db'}").get_trials()
    compared = 0
    for t in told:
        if "reused_from" in t.user_attrs:
            continue
        w = whole[t.user_attrs["config_key"]]
        assert (w.state, w.values, w.system_attrs) == (t.state, t.values, t.system_attrs)
        strip = lambda attrs: {k: v for k, v in attrs.items() if k != "outcome"}  # noqa: E731
        assert strip(w.user_attrs) == strip(t.user_attrs)
        assert {k: v for k, v in w.user_attrs["outcome"].items() if k != "evidence"} == \
            {k: v for k, v in t.user_attrs["outcome"].items() if k != "evidence"}
        compared += 1
    assert compared >= 5


def test_jobs_are_for_projected_studies(tmp_path):
    path = write_spec(tmp_path, mode="hybrid")
    out = subprocess.run([sys.executable, "-m", "infercost", "optimize", str(path), "--jobs", "2", "--results-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("infercost: error: --jobs: above 1 runs projected studies only (this study's mode "
                                 "is hybrid)")


def test_an_unpriced_placement_is_not_projected(tmp_path):
    import asyncio

    spec, evaluator = spec_and_evaluator(tmp_path)
    cfg = next(c for c in enumerate_space(spec) if c.hardware == "L4" and c.devices == 2)
    evaluator.catalog = evaluator.catalog.model_copy(update={"offers": [
        o for o in evaluator.catalog.offers if o.accelerator != "L4"]})
    evaluator._offered.clear()
    outcome = asyncio.run(evaluator.evaluate(cfg))
    assert outcome.status == "infeasible" and outcome.reason == "no catalog offer with a on_demand price for L4"
    assert outcome.capacity_rps is None and not evaluator.known_capacity(cfg)  # nothing was simulated


def _cases():
    step = StepModel(load_shape("llama-3.1-8b"), accelerators()["L4"], DEFAULT_GPU)
    for seed in range(10):
        rnd = random.Random(seed)
        arrivals = arrival_offsets("poisson", rnd.choice([0.5, 2, 8, 30]), 300, seed=seed)
        requests = [SimRequest(float(a), rnd.randint(20, 900), rnd.randint(1, 120), rnd.choice([None, 0, 1]),
                               rnd.choice([0, 64, 300])) for a in arrivals]
        config = SchedulerConfig(max_num_seqs=rnd.choice([4, 16, 64, 256]),
                                 max_num_batched_tokens=rnd.choice([512, 2048, 8192]),
                                 kv_capacity_tokens=rnd.choice([5000, 40000, 10**9]),
                                 enable_prefix_caching=rnd.random() < 0.5)
        yield step, requests, config


def test_fast_forwarded_decode_steps_give_the_same_figures():
    for step, requests, config in _cases():
        full = simulate(requests, step, config)
        fast = simulate(requests, step, config, token_times=False)
        assert [(r.first_token_s, r.end_s, r.output_tokens, r.error) for r in fast] == \
            [(r.first_token_s, r.end_s, r.output_tokens, r.error) for r in full]
        assert all(not r.token_times_s for r in fast) and any(r.token_times_s for r in full)


def test_a_simulated_probe_ends_once_its_ttft_bound_is_lost():
    step = StepModel(load_shape("llama-3.1-8b"), accelerators()["L4"], DEFAULT_GPU)
    requests = [SimRequest(float(a), 800, 100) for a in arrival_offsets("poisson", 60.0, 600, seed=1)]
    config = SchedulerConfig(max_num_seqs=32, max_num_batched_tokens=2048)
    full = simulate(requests, step, config, token_times=False)
    late = sum((r.first_token_s - r.sent_s) > 2.0 for r in full)
    assert late > 30  # overloaded: the whole run breaks a p95 bound of 2 s (30 of 600 allowed)
    stopped = simulate(requests, step, config, token_times=False, ttft_lost=(2.0, 30))
    import re

    over = re.fullmatch(r"SLO already lost: (\d+) requests over the TTFT bound 2000 ms \(allowed 30\)", stopped.stopped)
    assert over and int(over.group(1)) > 30
    assert sum(r.end_s is not None for r in stopped) < sum(r.end_s is not None for r in full) / 2
    light = [SimRequest(float(a), 800, 100) for a in arrival_offsets("poisson", 0.5, 100, seed=1)]
    assert simulate(light, step, config, token_times=False, ttft_lost=(2.0, 5)).stopped is None


def test_the_compiled_simulation_gives_the_figures_of_the_same_loop_in_python():
    from infercost.projection import kernel
    from infercost.projection.simulate import SimBatch, run_batch

    if not hasattr(kernel.run_schedule, "py_func"):
        pytest.skip("numba is not installed: the loop runs in Python only")
    for step, requests, config in _cases():
        for token_times in (True, False):
            compiled = run_batch(SimBatch.of(requests), step, config, token_times, (1.5, 10))
            original = kernel.run_schedule
            kernel.run_schedule = original.py_func
            try:
                import infercost.projection.simulate as sim

                sim.run_schedule = original.py_func
                python = run_batch(SimBatch.of(requests), step, config, token_times, (1.5, 10))
            finally:
                kernel.run_schedule = sim.run_schedule = original
            assert compiled.stopped == python.stopped
            for a, b in ((compiled.first_token, python.first_token), (compiled.end, python.end),
                         (compiled.generated, python.generated), (compiled.token_times, python.token_times)):
                assert (a is None and b is None) or a.tobytes() == b.tobytes()


def test_a_probe_summarised_from_columns_equals_the_summary_of_its_records():
    """The lean summary a simulated probe is judged by (per-metric vectorised definitions) against the full summary
    of the same simulation's records (per-request definitions): every SLO statistic, goodput, errors and rates."""
    from infercost.metrics import summarize
    from infercost.metrics.summary import summarize_columns
    from infercost.projection.simulate import SimBatch, run_batch
    from infercost.spec.workload import SLO

    slo = SLO(ttft_ms={"p95": 800, "p50": 300}, tpot_ms={"p90": 60}, e2e_ms={"p99": 20000}, itl_ms={"p99": 90},
              max_error_rate=0.05)
    checked = 0
    for step, requests, config in _cases():
        requests = [*requests, SimRequest(1.0, 50_000, 10)]  # larger than the smaller KV caches: never admitted
        result = run_batch(SimBatch.of(requests), step, config, token_times=True)
        lean, full = summarize_columns(result.columns(), slo), summarize(result.records(), slo, intervals=False)
        for metric, dist in lean.latency.items():
            assert dist.count == full.latency[metric].count
            assert dist.stats == pytest.approx(full.latency[metric].stats, rel=1e-12, nan_ok=True)
        assert [(c.metric, c.stat, c.passed) for c in lean.slo_checks] == \
            [(c.metric, c.stat, c.passed) for c in full.slo_checks]
        for field in ("requests", "completed", "failed", "error_rate", "duration_s", "request_throughput_rps",
                      "output_token_throughput_tps", "goodput_rps", "total_output_tokens", "errors",
                      "token_count_sources", "slo_met"):
            assert getattr(lean, field) == pytest.approx(getattr(full, field)), field
        checked += bool(full.errors)
    assert checked  # some case had requests that never fit the KV cache

