"""`infercost optimize` and `infercost trials`: the Optuna search for the cheapest configuration that meets the
quality and latency targets, and its trials as a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from infercost.errors import InputError


def positive_count(value: str | None, option: str) -> int | None:
    """A whole number above zero given on the command line; argparse's own error would print a usage block too."""
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        n = None
    if n is None or n <= 0:
        raise InputError(f"expected a whole number of at least 1 (got {value.strip()[:40]!r})", source=option)
    return n


def load_study_spec(path: str, overrides: list[str] = ()):
    from infercost.search.spec import StudySpec
    from infercost.spec.loader import load_spec_file

    return load_spec_file(StudySpec, path, overrides, "--study-set")


def load_study_workload(spec, study_path: str):
    """The study's workload; a path that leads nowhere is blamed on the study file's `workload` field, where the
    fix goes, not reported as a bare missing file."""
    from infercost.spec import load_workload
    from infercost.spec.files import exists

    path = spec.resolve(spec.workload)
    if not exists(path):
        raise InputError(f"workload file not found: {path} (a relative path is read from the study file's folder)",
                         source=str(study_path), field="workload")
    return load_workload(path)


def cmd_optimize(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from infercost.cost.catalog import load_catalog
    from infercost.search.evaluate import Evaluator
    from infercost.search.results import baseline_config, summary, trials_frame
    from infercost.search.study import default_storage, finished_trials, open_study, run_study
    from infercost.store import RunStore

    n_trials = positive_count(args.n_trials, "--n-trials")
    spec = load_study_spec(args.study, args.study_set)
    if n_trials is not None:
        spec.n_trials = n_trials
    workload = load_study_workload(spec, args.study)
    from infercost.workload import build_requests

    build_requests(workload)  # a bad prompt file fails here with its one-line error, before any trial
    from infercost.search.checks import check_study

    check_study(spec, workload, args.study, str(spec.resolve(spec.workload)))  # what `run` checks, before any trial
    storage = args.storage or default_storage(args.results_dir, spec)
    store = RunStore(Path(args.results_dir) / "studies" / (args.study_name or spec.name))
    evaluator = Evaluator(spec, workload, store, load_catalog(args.catalog or ()))
    console = Console(highlight=False, stderr=True)
    best_cost = [None]
    done = len(finished_trials(open_study(spec, storage, args.study_name)))
    if done and not args.quiet:
        todo = max(0, spec.n_trials - done)
        console.print(f"study {args.study_name or spec.name}: reusing {done} finished trial(s) stored in {storage}; "
                      + (f"{todo} more to run" if todo else "nothing left to run (raise --n-trials for more, or "
                         "delete the storage to start over)"), markup=False, soft_wrap=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[best]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=args.quiet) as bar:
        task = bar.add_task(f"study {spec.name} ({spec.mode})", total=max(spec.n_trials, done), completed=done,
                            best="")

        def on_trial(trial, outcome, reused):
            if outcome.status == "feasible" and outcome.objective is not None and (
                    best_cost[0] is None or outcome.objective < best_cost[0]):
                best_cost[0] = outcome.objective
            bar.update(task, advance=1, best=f"best {best_cost[0]:.5f}" if best_cost[0] is not None else "")
            verdict = outcome.status + ("" if outcome.status == "feasible" else f": {outcome.reason}")
            bar.console.print(f"trial {trial.number}: {outcome.config.label()} → "
                              f"{'%.5f' % outcome.objective if outcome.objective else '—'} ({verdict})"
                              + (" [reused]" if reused else ""), markup=False, soft_wrap=True)

        from infercost.cli_common import engine_output_to_stderr as _engine_output_to_stderr

        with _engine_output_to_stderr():
            study = open_study(spec, storage, args.study_name)
            if spec.baseline is not None and "baseline" not in study.user_attrs:
                outcome = asyncio.run(evaluator.evaluate(baseline_config(spec.baseline)))
                study.set_user_attr("baseline", json.loads(outcome.model_dump_json()))
            started = time.perf_counter()
            study = run_study(spec, evaluator, storage, args.study_name, on_trial)
    result = summary(study)
    result["storage"] = storage
    result["elapsed_s"] = time.perf_counter() - started
    if args.report:
        command = f"infercost optimize {args.study} --storage {storage}"
        paths = write_study_report(spec, study, workload, args.results_dir, args.catalog or (), None, command)
        result["report"] = {k: str(v) for k, v in paths.items()}
    frame = trials_frame(study)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0 if result["best"] else 1
    from infercost.report.search_console import print_study

    print_study(Console(highlight=False), result, frame)
    if args.report:
        print(f"report: {result['report']['html']}")
    return 0 if result["best"] else 1


def _open_existing(args):
    import optuna

    from infercost.search.study import default_storage, storage_for

    spec = load_study_spec(args.study) if args.study else None
    if args.storage:
        storage = args.storage
    elif spec is not None:
        storage = default_storage(args.results_dir, spec)
    else:
        raise InputError("give the study YAML or --storage", field="study")
    name = args.study_name or (spec.name if spec is not None else None)
    if name is None:
        names = optuna.get_all_study_names(storage_for(storage))
        if len(names) != 1:
            raise InputError(f"give --study-name: the storage holds {names}", field="--study-name")
        name = names[0]
    try:
        return spec, optuna.load_study(study_name=name, storage=storage_for(storage)), storage
    except KeyError:
        raise InputError(f"no study named {name!r} in {storage}", field="--study-name") from None


def write_study_report(spec, study, workload, results_dir: str, catalog_files=(), out_dir=None,
                       command: str | None = None):
    from infercost.cost.catalog import load_catalog
    from infercost.report.build import build_report
    from infercost.report.render import write_report
    from infercost.search.evaluate import Evaluator
    from infercost.store import RunStore

    catalog = load_catalog(catalog_files)
    evaluator = Evaluator(spec, workload, RunStore(Path(results_dir) / "studies" / study.study_name), catalog)
    report = build_report(study, spec, workload, catalog, evaluator, command)
    out = Path(out_dir) if out_dir else Path(results_dir) / "studies" / study.study_name / "report"
    return write_report(report, out)


def cmd_report(args: argparse.Namespace) -> int:
    spec, study, storage = _open_existing(args)
    if spec is None:
        raise InputError("the report needs the study YAML (for its workload)", field="study")
    workload = load_study_workload(spec, args.study)
    command = f"infercost optimize {args.study} --storage {storage} --study-name {study.study_name}"
    paths = write_study_report(spec, study, workload, args.results_dir, args.catalog or (), args.out, command)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    import pandas as pd

    from infercost.search.results import trials_frame

    _, study, _ = _open_existing(args)
    frame = trials_frame(study)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    if args.json:
        print(frame.to_json(orient="records", indent=2))
        return 0
    with pd.option_context("display.max_rows", 500, "display.width", 200, "display.max_colwidth", 60):
        cols = ["trial", "status", "kind", "model", "engine", "precision", "max_num_seqs", "prefix_caching",
                "hardware", "devices", "pricing", "capacity_rps", "cost_per_1k", "quality", "reason"]
        print(frame[cols].to_string(index=False) if not frame.empty else "no trials yet")
    return 0


def add_parsers(sub) -> None:
    opt = sub.add_parser("optimize", help="search for the cheapest configuration meeting quality and SLOs (Optuna)")
    opt.add_argument("study", help="study YAML")
    opt.add_argument("--storage", help="SQLAlchemy URL (default: sqlite file under results/studies/)")
    opt.add_argument("--study-name", help="name in the storage (default: the study's name); share it across workers")
    # parsed in cmd_optimize, not by argparse, so a bad value is one line like every other bad input
    opt.add_argument("--n-trials", metavar="N", help="total trials wanted (finished ones count; resume tops up)")
    opt.add_argument("--study-set", action="append", default=[], metavar="KEY=VALUE")
    opt.add_argument("--catalog", "-c", action="append")
    opt.add_argument("--results-dir", default=os.environ.get("INFERCOST_RESULTS", "results"))
    opt.add_argument("--report", action="store_true", help="write the recommendation report at the end")
    opt.add_argument("--quiet", "-q", action="store_true")
    opt.add_argument("--json", action="store_true")
    opt.set_defaults(func=cmd_optimize)

    rep = sub.add_parser("report", help="write the recommendation report (markdown, HTML, JSON, FOCUS CSV)")
    rep.add_argument("study", help="study YAML")
    rep.add_argument("--storage")
    rep.add_argument("--study-name")
    rep.add_argument("--catalog", "-c", action="append")
    rep.add_argument("--out", type=Path, help="directory (default: results/studies/<name>/report)")
    rep.add_argument("--results-dir", default=os.environ.get("INFERCOST_RESULTS", "results"))
    rep.set_defaults(func=cmd_report)

    tr = sub.add_parser("trials", help="the trials of a study as a table")
    tr.add_argument("study", nargs="?", help="study YAML (to find its default storage)")
    tr.add_argument("--storage")
    tr.add_argument("--study-name")
    tr.add_argument("--results-dir", default=os.environ.get("INFERCOST_RESULTS", "results"))
    tr.add_argument("--csv", type=Path)
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_trials)
