"""Running a study end to end: check everything that can be checked before a trial, evaluate the baseline once,
run (or resume) the Optuna study, and say what it found. The CLI and the Python API both call this."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Callable

import optuna

from infercost.cost.catalog import Catalog, load_catalog
from infercost.errors import InputError
from infercost.search.checks import check_study
from infercost.search.dispatch import executor_for
from infercost.search.evaluate import Evaluator, TrialOutcome
from infercost.search.hosted import check_apis
from infercost.search.results import StudyResult, baseline_config
from infercost.search.space import placing
from infercost.search.spec import StudySpec
from infercost.search.study import (TrialSteps, default_storage, evaluated_trials, open_study, run_trials,
                                    setup_study, storage_for)
from infercost.spec.workload import Workload
from infercost.store import RunStore
from infercost.workload import build_requests

OnTrial = Callable[[optuna.trial.FrozenTrial, TrialOutcome, bool], None]


def study_store(results_dir: str | Path, study_name: str) -> RunStore:
    """Where a study's measurements (capacity probes, quality answers) are kept."""
    return RunStore(Path(results_dir) / "studies" / study_name)


def evaluator_for(spec: StudySpec, workload: Workload, results_dir: str | Path, study_name: str | None = None,
                  catalog: Catalog | None = None) -> Evaluator:
    return Evaluator(spec, workload, study_store(results_dir, study_name or spec.name),
                     catalog if catalog is not None else load_catalog(()))


def optimize(spec: StudySpec, workload: Workload, *, storage: str | None = None, study_name: str | None = None,
             results_dir: str | Path = "results", catalog: Catalog | None = None,
             on_start: Callable[[int, int, str], None] | None = None, on_trial: OnTrial | None = None,
             sources: tuple[str, str] | None = None, executor: str | None = None,
             address: str | None = None, jobs: int = 1) -> StudyResult:
    """Runs until the study holds `spec.n_trials` evaluated configurations (those stored count: a rerun resumes;
    proposals answered from the study do not), or its whole space is evaluated.
    `on_start(done, wanted, storage)` is called once before the first trial; `on_trial(trial, outcome, reused)` after each.
    `sources` names the study and workload files in error messages. `executor="ray"` measures each placement on a
    node of the Ray cluster at `address` that has its accelerator (see `dispatch`). `jobs` > 1 runs a projected
    study in that many processes sharing its storage (one per core)."""
    study_source, workload_source = sources or (spec.name, workload.name)
    check_jobs(jobs, spec, executor)
    build_requests(workload)  # a bad prompt file fails here with its one-line error, before any trial
    check_study(spec, workload, study_source, workload_source)  # what `run` checks, before any trial
    storage = storage or default_storage(results_dir, spec)
    evaluator = evaluator_for(spec, workload, results_dir, study_name, catalog)
    check_apis(spec, evaluator.catalog, study_source)  # a vendor or model not in the catalog: one line, exit 2
    placing(spec, evaluator.pricing_offered, study_source)  # no accelerator the catalog prices: one line, exit 2
    study = open_study(spec, storage, study_name, evaluator.pricing_offered)
    dispatcher = executor_for(executor, address, study_store(results_dir, study_name or spec.name).root)
    try:
        if dispatcher is not None:
            dispatcher.attach(evaluator)
        if on_start is not None:
            on_start(len(evaluated_trials(study)), spec.n_trials, storage)
        if spec.baseline is not None and "baseline" not in study.user_attrs:
            cfg = baseline_config(spec.baseline)
            outcome = dispatcher.evaluate(cfg) if dispatcher else asyncio.run(evaluator.evaluate(cfg))
            study.set_user_attr("baseline", json.loads(outcome.model_dump_json()))
        started = time.perf_counter()
        steps, wanted = setup_study(spec, evaluator, storage, study_name, on_trial)
        todo = steps.not_evaluated(wanted) if steps.written_whole and dispatcher is None else None
        helpers = start_helpers(jobs - 1, spec, workload, storage, study_name, results_dir, evaluator.catalog,
                                steps.requeued, wanted, todo)
        try:
            run_trials(steps, wanted, dispatcher, (0, jobs), todo)
        finally:
            for h in helpers:
                h.join()
        study = steps.study
        failed = [h.exitcode for h in helpers if h.exitcode]
        if failed:
            raise RuntimeError(f"{len(failed)} helper process(es) of the study failed (exit {failed[0]})")
    finally:
        if dispatcher is not None:
            dispatcher.close()
    return StudyResult.of(study, storage, time.perf_counter() - started, spec=spec, workload=workload,
                          results_dir=str(results_dir))


def check_jobs(jobs: int, spec: StudySpec, executor: str | None) -> None:
    if jobs < 1:
        raise InputError(f"expected a whole number of at least 1 (got {jobs})", field="--jobs")
    if jobs > 1 and spec.mode != "project":
        raise InputError(f"above 1 runs projected studies only (this study's mode is {spec.mode}): measured trials "
                         "sharing one machine would disturb each other's numbers", field="--jobs")
    if jobs > 1 and executor not in (None, "local"):
        raise InputError("is for studies run in this process; with --executor ray the cluster runs trials "
                         "in parallel", field="--jobs")


def start_helpers(count: int, spec: StudySpec, workload: Workload, storage: str, study_name: str | None,
                  results_dir: str | Path, catalog: Catalog, requeued: set[str], wanted: int,
                  todo: list[int] | None = None) -> list:
    """Processes that run trials of the same study on its storage, after this one has set it up (so the warm start
    and requeued trials are queued once). Each has its own evaluator: projection is CPU-bound Python, so processes,
    not threads, use the cores. `todo`: an exhaustive study's configurations, shared out (see `run_trials`)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding database connections
    helpers = [ctx.Process(target=_helper, args=(spec, workload, storage, study_name, str(results_dir), catalog,
                                                 set(requeued), wanted, (i + 1, count + 1), todo), daemon=True,
                           name=f"infercost-job-{i + 2}")
               for i in range(count)]
    for h in helpers:
        h.start()
    return helpers


def _helper(spec: StudySpec, workload: Workload, storage: str, study_name: str | None, results_dir: str,
            catalog: Catalog, requeued: set[str], wanted: int, share: tuple[int, int] = (0, 1),
            todo: list[int] | None = None) -> None:
    evaluator = evaluator_for(spec, workload, results_dir, study_name, catalog)
    steps = TrialSteps(open_study(spec, storage, study_name, evaluator.pricing_offered), spec, evaluator)
    steps.requeued = requeued
    run_trials(steps, wanted, share=share, todo=todo)


def stored_study(storage: str | None, study_name: str | None, spec: StudySpec | None = None,
                 results_dir: str | Path = "results") -> optuna.Study:
    """A study already in `storage` (default: the spec's SQLite file). Without a name, the storage's only study."""
    if storage is None:
        if spec is None:
            raise InputError("give the study YAML or --storage", field="study")
        storage = default_storage(results_dir, spec)
    name = study_name or (spec.name if spec is not None else None)
    if name is None:
        names = optuna.get_all_study_names(storage_for(storage))
        if len(names) != 1:
            raise InputError(f"give --study-name: the storage holds {names}", field="--study-name")
        name = names[0]
    try:
        return optuna.load_study(study_name=name, storage=storage_for(storage))
    except KeyError:
        raise InputError(f"no study named {name!r} in {storage}", field="--study-name") from None
