"""The Python API, for notebooks and pipelines. Every function takes paths or spec objects and returns a typed
result; the `infercost` command is a thin layer over these.

    import infercost
    found = infercost.optimize("workloads/studies/demo.yaml")
    rec = infercost.recommend(found)
    print(rec.winner.label, rec.winner.cost_per_1k_requests)
    infercost.report(rec, "out/")
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Sequence

from infercost.capacity.result import CapacityOptions, CapacityResult
from infercost.cost.catalog import Catalog, load_catalog
from infercost.errors import InputError
from infercost.measure import Measurement, Progress, check_runnable, measure_sync
from infercost.preflight import preflight
from infercost.projection.run import Projection
from infercost.search.optimize import OnTrial, evaluator_for
from infercost.search.recommendation import Recommendation
from infercost.search.results import StudyResult
from infercost.search.spec import StudySpec
from infercost.spec.deployment import Deployment, OpenAIDeployment
from infercost.spec.files import exists
from infercost.spec.loader import deployment_adapter, load_deployment, load_spec_file, load_workload, validate
from infercost.spec.workload import Workload
from infercost.store import RunStore

PathLike = str | Path
Catalogs = Catalog | Sequence[PathLike] | None


# ------------------------------------------------------------------ inputs

def workload_of(workload: Workload | PathLike, overrides: Sequence[str] = ()) -> Workload:
    return workload if isinstance(workload, Workload) else load_workload(workload, list(overrides))


def deployment_of(deployment: Deployment | dict | PathLike | None, overrides: Sequence[str] = (),
                  default: dict | None = None) -> Deployment:
    """A deployment object, a mapping as in a deployment file, a file, or None (the bundled CPU deployment)."""
    if isinstance(deployment, dict):
        return validate(deployment_adapter(), deployment, source="deployment")
    if deployment is None or isinstance(deployment, (str, Path)):
        return load_deployment(deployment, list(overrides), default)
    return deployment


def study_of(study: StudySpec | PathLike, overrides: Sequence[str] = ()) -> StudySpec:
    if isinstance(study, StudySpec):
        return study
    return load_spec_file(StudySpec, study, list(overrides), "--study-set")


def study_workload(spec: StudySpec, source: str) -> Workload:
    """The study's workload; a path that leads nowhere is blamed on the study file's `workload` field."""
    path = spec.resolve(spec.workload)
    if not exists(path):
        raise InputError(f"workload file not found: {path} (a relative path is read from the study file's folder)",
                         source=source, field="workload")
    return load_workload(path)


def catalog_of(catalog: Catalogs) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else load_catalog(list(catalog or ()))


def _source(item: Any, default: str) -> str:
    return str(item) if isinstance(item, (str, Path)) else default


# ------------------------------------------------------------------ measuring here

def _checked(workload, deployment, workload_overrides, deployment_overrides) -> tuple[Workload, Deployment]:
    """The specs, with every check that needs no engine made (no engine starts on bad input)."""
    w, d = workload_of(workload, workload_overrides), deployment_of(deployment, deployment_overrides)
    check_runnable(w, d, source=_source(deployment, "default deployment"))
    preflight(w, d, _source(workload, w.name), _source(deployment, "default deployment"))
    return w, d


def run(workload: Workload | PathLike, deployment: Deployment | dict | PathLike | None = None, *,
        results_dir: PathLike = "results", progress: Progress | None = None, workload_overrides: Sequence[str] = (),
        deployment_overrides: Sequence[str] = (), repeats: int = 1) -> Measurement:
    """Replay the workload against one deployment and measure it. The run directory (`.run_dir`) holds the
    manifest, the per-request records and the summary. Overrides are `KEY=VALUE` strings, as `--set` takes.
    `repeats` > 1 (at most 10) starts the engine once and replays the workload that many times: the run directory
    then holds each replay under `replays/` and a summary of them pooled, with their spread in `summary.repeats`."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 10:
        raise InputError(f"repeats {repeats!r}: expected a whole number from 1 to 10", source="run", field="repeats")
    w, d = _checked(workload, deployment, workload_overrides, deployment_overrides)
    return measure_sync(w, d, RunStore(results_dir), progress, repeats=repeats)


def capacity(workload: Workload | PathLike, deployment: Deployment | dict | PathLike | None = None, *,
             options: CapacityOptions | dict | None = None, results_dir: PathLike = "results",
             progress: Progress | None = None, workload_overrides: Sequence[str] = (),
             deployment_overrides: Sequence[str] = ()) -> CapacityResult:
    """The highest load at which the workload's SLOs hold, found with real probes."""
    from infercost.capacity.measured import measure_capacity

    w, d = _checked(workload, deployment, workload_overrides, deployment_overrides)
    return asyncio.run(measure_capacity(w, d, RunStore(results_dir), _capacity_options(options), progress))


def evaluate_quality(workload: Workload | PathLike, deployment: Deployment | dict | PathLike | None = None, *,
                     results_dir: PathLike = "results", workload_overrides: Sequence[str] = (),
                     deployment_overrides: Sequence[str] = (), endpoint: OpenAIDeployment | dict | None = None,
                     cache_dir: PathLike | None = None):
    """Score the deployment's greedy answers against the workload's references or baseline (its `quality`
    section). Answers are cached under `cache_dir` (default results_dir/quality-cache).

    `endpoint` (an openai deployment: base_url, model = the served name, api_key_env) answers for `deployment` when
    the model cannot run here, e.g. a GPU box serving it: the answers are cached under the deployment's key, where a
    study looks for that model and precision, and say where they came from."""
    from infercost.engines import create_engine
    from infercost.quality import evaluate_sync

    w, d = workload_of(workload, workload_overrides), deployment_of(deployment, deployment_overrides)
    cache = Path(cache_dir) if cache_dir is not None else Path(results_dir) / "quality-cache"
    if endpoint is None:
        preflight(w, d, _source(workload, w.name), _source(deployment, "default deployment"))
        return evaluate_sync(w, d, cache_dir=cache, store=RunStore(results_dir))
    served = endpoint if isinstance(endpoint, OpenAIDeployment) else validate(
        OpenAIDeployment, {"engine": "openai", **endpoint}, source="--endpoint")
    return evaluate_sync(w, d, cache_dir=cache, store=RunStore(results_dir),
                         engine_factory=lambda x: create_engine(served if x == d else x))


def _capacity_options(options: CapacityOptions | dict | None) -> CapacityOptions:
    if isinstance(options, CapacityOptions):
        return options
    return validate(CapacityOptions, dict(options or {}), source="capacity options")


# ------------------------------------------------------------------ projecting elsewhere

def project(workload: Workload | PathLike, deployment: Deployment | dict | PathLike | None = None, *,
            hardware: str, workload_overrides: Sequence[str] = (), deployment_overrides: Sequence[str] = (), model: str | None = None, devices: int | None = None, dtype: str | None = None,
            calibration: PathLike | None = None, options: CapacityOptions | dict | None = None,
            catalog: Catalogs = None, price: bool = True) -> Projection:
    """Projected latency, capacity and cost on `hardware` (H100-SXM, L4, ..., or host-cpu). Without a deployment:
    vLLM's own defaults for a GPU server."""
    from infercost.projection.run import project as project_workload

    w = workload_of(workload, workload_overrides)
    d = deployment_of(deployment, deployment_overrides, default={"engine": "vllm", "model": model or "smollm2-135m-instruct"})
    return project_workload(w, d, hardware, model=model, devices=devices, dtype=dtype, calibration=calibration,
                            options=_capacity_options(options), catalog=catalog_of(catalog) if price else None)


# ------------------------------------------------------------------ searching and recommending

def optimize(study: StudySpec | PathLike, *, study_overrides: Sequence[str] = (),
             workload: Workload | PathLike | None = None, n_trials: int | None = None, storage: str | None = None, study_name: str | None = None,
             results_dir: PathLike = "results", catalog: Catalogs = None, on_trial: OnTrial | None = None,
             on_start: Callable[[int, int, str], None] | None = None, executor: str | None = None,
             address: str | None = None, jobs: int = 1) -> StudyResult:
    """Search for the cheapest configuration that meets the quality and latency targets (Optuna). Resumes a study
    already in `storage` (a SQLAlchemy URL; default: a SQLite file under results_dir/studies). `executor="ray"`
    measures each placement on a node of the Ray cluster at `address` that has its accelerator. `jobs` > 1 runs a
    projected study in that many processes (one per core)."""
    from infercost.search.optimize import optimize as run_optimize

    spec = study_of(study, study_overrides)
    if n_trials is not None:
        spec = spec.model_copy(update={"n_trials": n_trials})
    w = workload_of(workload) if workload is not None else study_workload(spec, _source(study, spec.name))
    sources = (_source(study, spec.name), _source(workload, str(spec.resolve(spec.workload))))
    return run_optimize(spec, w, storage=storage, study_name=study_name, results_dir=results_dir,
                        catalog=catalog_of(catalog), on_start=on_start, on_trial=on_trial, sources=sources,
                        executor=executor, address=address, jobs=jobs)


def recommend(study: StudyResult | StudySpec | PathLike, *, workload: Workload | PathLike | None = None,
              storage: str | None = None, study_name: str | None = None, results_dir: PathLike | None = None,
              catalog: Catalogs = None, command: str | None = None) -> Recommendation:
    """The recommendation of a finished (or stored) study: the winner, the alternatives and why each lost, and the
    evidence. Starts no engine."""
    from infercost.search.optimize import stored_study
    from infercost.search.recommend import recommend as build

    if isinstance(study, StudyResult):
        optuna_study = study.optuna_study
        spec = study.spec or StudySpec.model_validate(optuna_study.user_attrs["spec"])
        results_dir = results_dir or study.results_dir or "results"
        w = workload_of(workload) if workload is not None else study.workload
    else:
        spec = study_of(study)
        results_dir = results_dir or "results"
        optuna_study = stored_study(storage, study_name, spec, results_dir)
        w = workload_of(workload) if workload is not None else study_workload(spec, _source(study, spec.name))
    cat = catalog_of(catalog)
    evaluator = evaluator_for(spec, w, results_dir, optuna_study.study_name, cat)
    return build(optuna_study, spec, w, cat, evaluator, command)


def report(recommendation: Recommendation, out_dir: PathLike) -> dict[str, Path]:
    """Write report.md, report.html, report.json and the FOCUS CSV; returns their paths by kind."""
    from infercost.report.render import write_report

    return write_report(recommendation, out_dir)
