"""`infercost run`, `quality` and `capacity`: measuring one deployment here."""

from __future__ import annotations

import argparse
import json
import sys

from infercost.errors import InputError
from infercost.cli.common import (EXIT_NOT_MET, EXIT_OK, EXIT_RUN_FAILED, console, engine_output_to_stderr, one_line,
                                  options_from, parent)

CAPACITY_OPTIONS = ("mode", "start", "precision", "max_load", "max_probes", "tail_samples", "min_requests", "requests",
                    "max_in_flight", "repeats")


def cmd_run(args: argparse.Namespace) -> int:
    from infercost import api
    from infercost.report.console import RichProgress, print_summary
    from infercost.store import load_run

    with engine_output_to_stderr(), RichProgress() as progress:
        result = api.run(args.workload, args.deployment, results_dir=args.results_dir,
                         progress=None if args.quiet else progress, workload_overrides=args.workload_set,
                         deployment_overrides=args.set, repeats=args.repeats)
    out = console()
    if result.status == "infeasible":
        out.print(f"[red]deployment infeasible here:[/] {result.reason}", highlight=False, soft_wrap=True)
        out.print(f"recorded in {result.run_dir}")
        return EXIT_NOT_MET
    try:
        run = load_run(result.run_dir)
        summary = run.summary
    except (OSError, ValueError):  # a results disk that failed mid-run may not give it back whole
        run, summary = None, None
    if summary is not None:
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print_summary(out, run.manifest, summary)
            out.print(f"results: {result.run_dir}")
    if result.status == "failed":
        print(f"infercost: run failed: {one_line(result.reason)} (what was recorded is in {result.run_dir})",
              file=sys.stderr)
        return EXIT_RUN_FAILED
    if result.error_limit_exceeded:
        s = result.summary
        limit = ((run.manifest.get("error_limit") if run else None) or {}).get("max_error_rate")
        print(f"infercost: error limit not met: {s.failed} of {s.requests} requests failed, error rate "
              f"{s.error_rate:.1%} > slo.max_error_rate " + ("?" if limit is None else f"{limit:.1%}")
              + f" (results in {result.run_dir})", file=sys.stderr)
        return EXIT_NOT_MET
    return EXIT_OK


def cmd_quality(args: argparse.Namespace) -> int:
    from infercost import api
    from infercost.report.console import print_quality

    with engine_output_to_stderr():
        endpoint = None
        if args.endpoint:
            if not args.served_model:
                raise InputError("--endpoint needs --served-model (the model name the endpoint expects)",
                                 field="--served-model")
            endpoint = {"base_url": args.endpoint, "model": args.served_model, "api_key_env": args.api_key_env}
        elif args.served_model or args.api_key_env:
            raise InputError("--served-model and --api-key-env describe an --endpoint: give --endpoint URL too",
                             field="--endpoint")
        result = api.evaluate_quality(args.workload, args.deployment, results_dir=args.results_dir,
                                      workload_overrides=args.workload_set, deployment_overrides=args.set,
                                      endpoint=endpoint, cache_dir=args.cache_dir)
    if args.json:
        print(result.summary.model_dump_json(indent=2))
    else:
        print_quality(console(), result.summary, worst=args.worst)
        console().print(f"results: {result.run_dir}")
    return 0 if result.summary.target_met is not False else 1


def cmd_capacity(args: argparse.Namespace) -> int:
    from infercost import api
    from infercost.capacity import CapacityOptions
    from infercost.report.console import RichProgress, print_capacity

    options = options_from(args, CapacityOptions, CAPACITY_OPTIONS)
    with engine_output_to_stderr(), RichProgress() as progress:
        result = api.capacity(args.workload, args.deployment, options=options, results_dir=args.results_dir,
                              progress=None if args.quiet else progress, workload_overrides=args.workload_set,
                              deployment_overrides=args.set)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print_capacity(console(), result)
        console().print(f"results: {result.provenance.get('capacity_dir', args.results_dir)}")
    if result.status == "failed":
        print(f"infercost: capacity search failed: {result.reason}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0 if result.capacity_load is not None else 1


def add_parsers(sub) -> None:
    common = parent("deployment", "results")
    run = sub.add_parser("run", parents=[common, parent("quiet", "json")],
                         help="replay a workload against one deployment and measure it")
    run.add_argument("workload", help="workload YAML")
    run.add_argument("--repeats", type=int, default=1,
                     help="replay the workload this many times on one engine (1-10): the summary pools them and "
                          "gives their spread")
    run.set_defaults(func=cmd_run)

    quality = sub.add_parser("quality", parents=[common, parent("json")],
                             help="score a deployment's greedy answers against references or a baseline")
    quality.add_argument("workload", help="workload YAML (its `quality` section sets scorers and target)")
    quality.add_argument("--worst", type=int, default=5, help="how many of the worst answers to show")
    quality.add_argument("--endpoint", metavar="URL",
                         help="an OpenAI-compatible server that serves the deployment's model (e.g. a GPU box): its "
                              "answers stand for the deployment's and are cached under its key")
    quality.add_argument("--served-model", metavar="NAME", help="the model name the endpoint expects")
    quality.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the endpoint's key")
    quality.add_argument("--cache-dir", metavar="DIR",
                         help="answer cache (default results/quality-cache; a study's is "
                              "results/studies/NAME/quality-cache)")
    quality.set_defaults(func=cmd_quality)

    cap = sub.add_parser("capacity", parents=[common, parent("quiet", "json")],
                         help="the highest load at which the workload's SLOs hold (real probes)")
    cap.add_argument("workload", help="workload YAML (its slo section is what must hold)")
    cap.add_argument("--mode", choices=["rate", "concurrency"], help="open-loop rate (default) or closed-loop users")
    cap.add_argument("--start", type=float, help="first load (default 1)")
    cap.add_argument("--precision", type=float, help="bracket width to stop at, as a share (default 0.05)")
    cap.add_argument("--max-load", type=float)
    cap.add_argument("--max-probes", type=int)
    cap.add_argument("--tail-samples", type=int, help="observations beyond the strictest percentile (default 10)")
    cap.add_argument("--min-requests", type=int)
    cap.add_argument("--requests", type=int, help="fixed requests per probe instead of the sample rule")
    cap.add_argument("--max-in-flight", type=int, help="stop a probe whose queue exceeds this")
    cap.add_argument("--repeats", type=int,
                     help="runs at each edge (1-10, default 1): the highest pass and lowest fail are re-run until "
                          "each has this many; an edge whose runs disagree makes the result unstable")
    cap.set_defaults(func=cmd_capacity)
