"""`infercost optimize`, `report` and `trials`: the Optuna search for the cheapest configuration that meets the
quality and latency targets, its recommendation report, and its trials as a table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infercost.cli.common import engine_output_to_stderr, parent, positive_count


def _progress(console, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    disable=quiet)


def cmd_optimize(args: argparse.Namespace) -> int:
    from rich.console import Console

    from infercost import api
    from infercost.report.search_console import print_study

    n_trials = positive_count(args.n_trials, "--n-trials")
    spec = api.study_of(args.study, args.study_set)  # for the progress bar; optimize loads it the same way
    name = args.study_name or spec.name
    console = Console(highlight=False, stderr=True)
    best_cost = [None]
    bar = _progress(console, args.quiet)  # started once the inputs are checked: a bad file is one line, no bar
    task = bar.add_task(f"study {spec.name} ({spec.mode})", total=n_trials or spec.n_trials, best="")

    def on_start(done: int, wanted: int, storage: str) -> None:
        bar.start()
        if done and not args.quiet:
            todo = max(0, wanted - done)
            bar.console.print(f"study {name}: reusing {done} finished trial(s) stored in {storage}; "
                              + (f"{todo} more to run" if todo else "nothing left to run (raise --n-trials for "
                                 "more, or delete the storage to start over)"), markup=False, soft_wrap=True)
        bar.update(task, total=max(wanted, done), completed=done)

    def on_trial(trial, outcome, reused):
        if outcome.status == "feasible" and outcome.objective is not None and (
                best_cost[0] is None or outcome.objective < best_cost[0]):
            best_cost[0] = outcome.objective
        bar.update(task, advance=1, best=f"best {best_cost[0]:.5f}" if best_cost[0] is not None else "")
        verdict = outcome.status + ("" if outcome.status == "feasible" else f": {outcome.reason}")
        bar.console.print(f"trial {trial.number}: {outcome.config.label()} → "
                          f"{'%.5f' % outcome.objective if outcome.objective else '—'} ({verdict})"
                          + (" [reused]" if reused else ""), markup=False, soft_wrap=True)

    try:
        with engine_output_to_stderr():
            found = api.optimize(args.study, study_overrides=args.study_set, n_trials=n_trials, storage=args.storage,
                                 study_name=args.study_name, results_dir=args.results_dir, catalog=args.catalog,
                                 on_start=on_start, on_trial=on_trial, executor=args.executor, address=args.address,
                                 jobs=positive_count(args.jobs, "--jobs") or 1)
    finally:
        if bar.live.is_started:  # stopping a bar that never started prints a blank line before the error
            bar.stop()
    if args.report:
        command = f"infercost optimize {args.study} --storage {found.storage}"
        rec = api.recommend(found, catalog=args.catalog, command=command)
        paths = api.report(rec, Path(args.results_dir) / "studies" / found.study / "report")
        found.report = {k: str(v) for k, v in paths.items()}
    if args.json:
        print(json.dumps(found.to_json(), indent=2, default=str))
        return 0 if found.best else 1
    print_study(Console(highlight=False), found.to_json(), found.trials_frame())
    if args.report:
        print(f"report: {found.report['html']}")
    return 0 if found.best else 1


def cmd_report(args: argparse.Namespace) -> int:
    from infercost import api
    from infercost.search.study import default_storage

    spec = api.study_of(args.study)
    name = args.study_name or spec.name
    command = (f"infercost optimize {args.study} --storage {args.storage or default_storage(args.results_dir, spec)}"
               f" --study-name {name}")
    rec = api.recommend(args.study, storage=args.storage, study_name=args.study_name, results_dir=args.results_dir,
                        catalog=args.catalog, command=command)
    out = args.out or Path(args.results_dir) / "studies" / rec.study / "report"
    for kind, path in api.report(rec, out).items():
        print(f"{kind}: {path}")
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    import pandas as pd

    from infercost.search.results import trials_frame

    from infercost import api
    from infercost.search.optimize import stored_study

    spec = api.study_of(args.study) if args.study else None
    frame = trials_frame(stored_study(args.storage, args.study_name, spec, args.results_dir))
    if args.csv:
        frame.to_csv(args.csv, index=False)
    if args.json:
        print(frame.to_json(orient="records", indent=2))
        return 0
    with pd.option_context("display.max_rows", 500, "display.width", 200, "display.max_colwidth", 60):
        cols = ["trial", "status", "kind", "model", "engine", "precision", "max_num_seqs", "prefix_caching",
                "hardware", "devices", "pricing", "capacity_rps", "cost_per_1k", "quality", "reason"]
        if not frame.empty and frame["node"].notna().any():  # a study measured on a cluster: which node measured each trial
            cols.insert(cols.index("capacity_rps"), "node")
        print(frame[cols].to_string(index=False) if not frame.empty else "no trials yet")
    return 0


def add_parsers(sub) -> None:
    stored = parent("storage", "results")
    opt = sub.add_parser("optimize", parents=[stored, parent("catalog", "quiet", "json")],
                         help="search for the cheapest configuration meeting quality and SLOs (Optuna)")
    opt.add_argument("study", help="study YAML")
    # parsed in cmd_optimize, not by argparse, so a bad value is one line like every other bad input
    opt.add_argument("--n-trials", metavar="N", help="total trials wanted (finished ones count; resume tops up)")
    opt.add_argument("--study-set", action="append", default=[], metavar="KEY=VALUE")
    opt.add_argument("--report", action="store_true", help="write the recommendation report at the end")
    opt.add_argument("--jobs", metavar="N", help="processes running a projected study's trials (default 1; up to "
                     "one per core)")
    opt.add_argument("--executor", default="local", metavar="NAME",
                     help="where trials run: local (this process, default) or ray (each measured placement on a node "
                          "of a Ray cluster with its accelerator; pip install 'infercost[ray]')")
    opt.add_argument("--address", metavar="HOST:PORT", help="the Ray cluster to join (default: RAY_ADDRESS, else a "
                     "local Ray started for this study); ray://HOST:10001 for Ray Client")
    opt.set_defaults(func=cmd_optimize)

    rep = sub.add_parser("report", parents=[stored, parent("catalog")],
                         help="write the recommendation report (markdown, HTML, JSON, FOCUS CSV)")
    rep.add_argument("study", help="study YAML")
    rep.add_argument("--out", type=Path, help="directory (default: results/studies/<name>/report)")
    rep.set_defaults(func=cmd_report)

    tr = sub.add_parser("trials", parents=[stored], help="the trials of a study as a table")
    tr.add_argument("study", nargs="?", help="study YAML (to find its default storage)")
    tr.add_argument("--csv", type=Path)
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_trials)
