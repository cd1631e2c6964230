"""Does the search find the cheapest feasible configuration on every seed, and how fast is a projected trial?

Two projected spaces of more than 2,000 combinations (the RAG shared-prefix workload: 3 models x bfloat16/fp8 x
4 batch sizes x prefix caching on/off x 6 accelerators x 1/2/4/8 devices x on-demand/spot = 2,304; the chat
workload: 4 models x 3 precisions x 3 batch sizes x prefix caching x 5 accelerators x 1/2/4 devices x 2 pricing
models = 2,160), of which the shipped catalog prices 1,296 and 1,440 (no spot H200, L40S or A10G; no offer with
more than one L4 or A10G): the space the search draws from. Each is evaluated exhaustively once by `infercost
optimize` itself (sampler: grid, two processes on one SQLite storage): the true optimum, and the time per projected
trial. Then every sampler runs the same study
10 times (seeds 0-9) on those evaluations, and we count the distinct configurations each needs to reach one within
2% of the optimum. Targets: every seed of the default (TPE with the analytic warm start) within 2% by 10% of the
space, and its median by 3%; the exhaustive study of the first space in 60 s or less on 2 cores."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from infercost import api
from infercost.cost.catalog import load_catalog
from infercost.search.evaluate import Evaluator, TrialOutcome
from infercost.search.space import enumerate_space
from infercost.search.spec import StudySpec
from infercost.search.study import outcomes, run_study
from infercost.spec import load_workload
from infercost.store import RunStore

WORKLOADS = Path(__file__).resolve().parents[1] / "workloads"
SEEDS = range(10)
JOBS = min(2, len(os.sched_getaffinity(0)))

SPACES = {
    "rag-shared-prefix": {
        "models": ["llama-3.1-8b", "qwen2.5-7b", "llama-3.1-70b"], "engines": ["vllm"],
        "precisions": {"vllm": ["bfloat16", "fp8"]}, "max_num_seqs": [16, 32, 128, 512],
        "enable_prefix_caching": [True, False],
        "placements": {"hardware": ["H100-SXM", "H200", "A100-80GB", "L40S", "L4", "A10G"], "devices": [1, 2, 4, 8],
                       "pricing": ["on_demand", "spot"]}},
    "chat-support": {
        "models": ["llama-3.1-8b", "qwen2.5-7b", "llama-3.1-70b", "mixtral-8x7b"], "engines": ["vllm"],
        "precisions": {"vllm": ["bfloat16", "fp8", "awq"]}, "max_num_seqs": [16, 64, 256],
        "enable_prefix_caching": [True, False],
        "placements": {"hardware": ["H100-SXM", "H200", "A100-80GB", "L40S", "L4"], "devices": [1, 2, 4],
                       "pricing": ["on_demand", "spot"]}},
}
SAMPLERS = {  # name -> study overrides
    "tpe + warm start (default)": {"sampler": "tpe", "warm_start": True},
    "tpe, no warm start": {"sampler": "tpe", "warm_start": False},
    "random": {"sampler": "random", "warm_start": False},
}


def study_spec(workload: str, **overrides):
    return StudySpec(**{"name": f"known-optimum-{workload}", "workload": str(WORKLOADS / f"{workload}.yaml"),
                         "mode": "project", "space": SPACES[workload], "capacity": {"precision": 0.1},
                         "constraints": {"quality": False, "budget": False}, **overrides})


class Replayed(Evaluator):
    """The exhaustive study's outcomes, looked up: each sampler sees exactly what a real trial would give it (the
    warm start's analytic ranking is computed for real)."""

    def __init__(self, *args, table: dict[str, TrialOutcome], seen: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.table, self.seen = table, seen

    async def evaluate(self, cfg):
        self.seen.append(cfg.key())
        return self.table[cfg.key()]


def evaluations_to_target(spec, workload, table, optimum, storage, budget) -> int:
    """Distinct configurations evaluated until one within 2% of the optimum (repeats are free: a study reuses an
    evaluated configuration's outcome); the budget + 1 if none was found."""
    seen: list[str] = []
    found: list[int] = []

    def on_trial(trial, outcome, reused):
        if not found and outcome.status == "feasible" and outcome.objective <= optimum * 1.02:
            found.append(len(set(seen)))
            trial.study.stop()

    evaluator = Replayed(spec, workload, RunStore(Path(storage).parent / "r"), load_catalog(), table=table, seen=seen)
    run_study(spec.model_copy(update={"n_trials": budget}), evaluator, f"sqlite:///{storage}", on_trial=on_trial)
    return found[0] if found else budget + 1


@pytest.mark.parametrize("workload", list(SPACES))
def test_every_seed_finds_the_optimum(workload, benchmark, tmp_path):
    grid = study_spec(workload, sampler="grid", n_trials=len(enumerate_space(study_spec(workload))))
    priced = Evaluator(grid, load_workload(grid.resolve(grid.workload)), RunStore(tmp_path / "space"), load_catalog())
    size = len(enumerate_space(grid, priced.pricing_offered))
    assert len(enumerate_space(grid)) >= 2000 and size >= 1000
    started = time.perf_counter()
    found = api.optimize(grid, storage=f"sqlite:///{tmp_path / 'grid.db'}", results_dir=tmp_path, jobs=JOBS)
    exhaustive_s = time.perf_counter() - started
    table = {o.config.key(): o for _, o in outcomes(found.optuna_study)}
    assert len(table) == size  # every configuration evaluated once
    feasible = [o.objective for o in table.values() if o.status == "feasible"]
    optimum = min(feasible)
    budget = size // 10

    def run():
        out = {}
        for i, (name, overrides) in enumerate(SAMPLERS.items()):  # a storage per sampler and seed: no resuming
            out[name] = [evaluations_to_target(study_spec(workload, seed=s, **overrides), found.workload, table,
                                               optimum, tmp_path / f"sampler{i}-seed{s}.db", budget) for s in SEEDS]
        return out

    results = benchmark.pedantic(run, rounds=1, iterations=1)
    rows = {name: {"worst": max(v), "median": statistics.median(v), "seeds": v} for name, v in results.items()}
    benchmark.extra_info.update(space=size, feasible=len(feasible), optimum=optimum, exhaustive_s=exhaustive_s,
                                jobs=JOBS, s_per_trial=exhaustive_s * JOBS / size, samplers=rows)
    print(f"\n{workload}: {size} configurations ({len(feasible)} feasible), optimum {optimum:.6f} "
          f"({grid.objective_for(found.workload)}); "
          f"exhaustive study {exhaustive_s:.1f} s with {JOBS} processes ({exhaustive_s * JOBS / size * 1e3:.0f} ms "
          f"per projected trial per process)")
    print(f"evaluations to within 2% of the optimum (budget {budget}; {budget + 1} = not found):")
    for name, r in rows.items():
        print(f"  {name:28s} worst {r['worst']:4} ({r['worst'] / size:.1%})  median {r['median']:6.1f} "
              f"({r['median'] / size:.1%})  {r['seeds']}")
    default = rows["tpe + warm start (default)"]
    assert default["worst"] <= 0.10 * size and default["median"] <= 0.03 * size
    if workload == "rag-shared-prefix" and JOBS >= 2:
        # 462 s when first measured, 188 s with the first shortcuts; compiled simulation and trials stored whole: 29 s
        print(f"exhaustive target 60 s: {'met' if exhaustive_s <= 60 else 'not met'} ({exhaustive_s:.0f} s)")
        assert exhaustive_s <= 60
