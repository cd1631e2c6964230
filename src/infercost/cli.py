"""The `infercost` command. Bad input ends with one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from infercost import __version__
from infercost.errors import InputError, RunFailed


from infercost.cli_common import console as _console  # noqa: E402
from infercost.cli_common import engine_output_to_stderr as _engine_output_to_stderr  # noqa: E402


# Exit status of `run` (README: "Exit codes"):
EXIT_OK = 0  # the run completed and its error rate is within the workload's slo.max_error_rate
EXIT_NOT_MET = 1  # the deployment cannot run here (infeasible), or the error rate is above slo.max_error_rate
EXIT_BAD_INPUT = 2  # a spec, option or results directory is wrong: one line naming it, nothing run (InputError)
EXIT_RUN_FAILED = 3  # the run started and failed: every request failed, the server became unreachable, the results
#                      could not be written, or the load generator broke; the manifest says `failed` with the reason
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; what was measured is kept (status `interrupted`)


def _one_line(text: str | None) -> str:
    return " ".join(str(text or "").split())


def _preflight(workload, deployment, args: argparse.Namespace) -> None:
    """What can fail without an engine fails before one starts (the checks `validate` makes)."""
    from infercost.preflight import preflight

    preflight(workload, deployment, args.workload, args.deployment or "default deployment")


def cmd_run(args: argparse.Namespace) -> int:
    from infercost.measure import check_runnable, measure_sync
    from infercost.report.console import RichProgress, print_summary
    from infercost.spec import load_deployment, load_workload
    from infercost.store import RunStore, load_run

    workload = load_workload(args.workload, args.workload_set)
    deployment = load_deployment(args.deployment, args.set)
    check_runnable(workload, deployment, source=args.deployment or "default deployment")
    _preflight(workload, deployment, args)
    console = _console()
    store = RunStore(args.results_dir)
    with _engine_output_to_stderr(), RichProgress() as progress:
        result = measure_sync(workload, deployment, store, None if args.quiet else progress)
    if result.status == "infeasible":
        console.print(f"[red]deployment infeasible here:[/] {result.reason}", highlight=False, soft_wrap=True)
        console.print(f"recorded in {result.run_dir}")
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
            print_summary(console, run.manifest, summary)
            console.print(f"results: {result.run_dir}")
    if result.status == "failed":
        print(f"infercost: run failed: {_one_line(result.reason)} (what was recorded is in {result.run_dir})",
              file=sys.stderr)
        return EXIT_RUN_FAILED
    if result.error_limit_exceeded:
        s = result.summary
        print(f"infercost: error limit not met: {s.failed} of {s.requests} requests failed, error rate "
              f"{s.error_rate:.1%} > slo.max_error_rate {workload.slo.max_error_rate:.1%} (results in "
              f"{result.run_dir})", file=sys.stderr)
        return EXIT_NOT_MET
    return EXIT_OK


def cmd_quality(args: argparse.Namespace) -> int:
    from infercost.quality import evaluate_sync
    from infercost.report.console import print_quality
    from infercost.spec import load_deployment, load_workload
    from infercost.store import RunStore

    workload = load_workload(args.workload, args.workload_set)
    deployment = load_deployment(args.deployment, args.set)
    _preflight(workload, deployment, args)
    with _engine_output_to_stderr():
        result = evaluate_sync(workload, deployment, cache_dir=Path(args.results_dir) / "quality-cache",
                               store=RunStore(args.results_dir))
    if args.json:
        print(result.summary.model_dump_json(indent=2))
    else:
        print_quality(_console(), result.summary, worst=args.worst)
        _console().print(f"results: {result.run_dir}")
    return 0 if result.summary.target_met is not False else 1


def cmd_capacity(args: argparse.Namespace) -> int:
    import asyncio

    from infercost.capacity import CapacityOptions
    from infercost.capacity.measured import measure_capacity
    from infercost.report.console import RichProgress, print_capacity
    from infercost.spec import load_deployment, load_workload
    from infercost.spec.loader import validate
    from infercost.measure import check_runnable
    from infercost.store import RunStore

    workload = load_workload(args.workload, args.workload_set)
    deployment = load_deployment(args.deployment, args.set)
    check_runnable(workload, deployment, source=args.deployment or "default deployment")
    _preflight(workload, deployment, args)
    fields = {k: getattr(args, k) for k in ("mode", "start", "precision", "max_load", "max_probes", "tail_samples",
                                            "min_requests", "requests", "max_in_flight") if getattr(args, k) is not None}
    options = validate(CapacityOptions, fields, source="command line")
    with _engine_output_to_stderr(), RichProgress() as progress:
        result = asyncio.run(measure_capacity(workload, deployment, RunStore(args.results_dir), options,
                                              None if args.quiet else progress))
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print_capacity(_console(), result)
        _console().print(f"results: {result.provenance.get('capacity_dir', args.results_dir)}")
    if result.status == "failed":
        print(f"infercost: capacity search failed: {result.reason}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0 if result.capacity_load is not None else 1


def cmd_schema(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter

    from infercost.spec import Workload
    from infercost.spec.loader import deployment_adapter

    adapter = TypeAdapter(Workload) if args.kind == "workload" else deployment_adapter()
    text = json.dumps(adapter.json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """The same checks `run` makes before it starts an engine (infercost.preflight), and nothing that needs one."""
    from infercost.preflight import preflight
    from infercost.spec import load_deployment, load_workload
    from infercost.workload import build_requests

    workload = load_workload(args.workload)
    requests = build_requests(workload)
    if args.deployment:
        deployment = load_deployment(args.deployment)
        notes = preflight(workload, deployment, args.workload, args.deployment, requests)
    print(f"{args.workload}: ok (workload '{workload.name}', {len(requests)} prompts)")
    if args.deployment:
        print(f"{args.deployment}: ok ({deployment.engine} deployment of {deployment.model})")
        for note in notes:
            print(f"  note: {note}")  # what cannot be known without an engine or a server
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from infercost.errors import EngineUnavailable
    from infercost.models.bundled import BUNDLED, converted_dir, gguf_path, is_converted, resolve_model

    if args.prepare:
        for alias in args.prepare:
            if alias not in BUNDLED:
                raise InputError(f"unknown alias '{alias}': expected one of {', '.join(BUNDLED)}", field="models")
            print(f"{alias}: {resolve_model(alias)}")
        return 0
    table = Table(title="bundled models")
    for col in ("alias", "package", "installed", "converted", "licence", "chat", "path"):
        table.add_column(col)
    for m in BUNDLED.values():
        try:
            gguf_path(m) if m.locate is None else __import__(m.module)
            installed = "yes"
        except (EngineUnavailable, ImportError):
            installed = f"no: {m.install}"
        table.add_row(m.alias, m.package, installed, "yes" if is_converted(m) else "no (on first use)",
                      m.license, "yes" if m.chat else "no", str(converted_dir(m)))
    _console().print(table)
    return 0


def cmd_engines(args: argparse.Namespace) -> int:
    from rich.table import Table

    from infercost.engines.capabilities import capabilities

    table_data = capabilities(refresh=args.refresh)
    if args.json:
        print(json.dumps(table_data, indent=2))
        return 0
    console = _console()
    for name, caps in table_data["engines"].items():
        table = Table(title=f"{name}: " + ", ".join(f"{k} {v}" for k, v in caps.items()
                                                       if isinstance(v, str) and k != "note"), title_justify="left")
        table.add_column("option")
        table.add_column("value")
        table.add_column("supported here", overflow="fold")
        for group in ("dtypes", "quantization"):
            for option, verdict in (caps.get(group) or {}).items():
                table.add_row(group, option, verdict)
        if caps.get("quantization_methods"):
            table.add_row("quantization", ", ".join(m for m in caps["quantization_methods"]
                                                    if m not in caps.get("quantization", {})),
                          "known to this vLLM, not yet tried here")
        if caps.get("kv_cache_dtype"):
            table.add_row("kv_cache_dtype", ", ".join(caps["kv_cache_dtype"]), "accepted by this vLLM")
        if caps.get("note"):
            table.caption = caps["note"]
        console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from infercost.report.console import print_summary
    from infercost.store import load_run

    path = Path(args.run)
    if not (path / "manifest.json").is_file():
        raise InputError("not a run directory (no manifest.json)", source=str(path))
    run = load_run(path)
    if run.summary is None:
        print(f"{path}: status {run.manifest.get('status')}: {run.manifest.get('reason', 'no summary')}")
        return 0
    print_summary(_console(), run.manifest, run.summary)
    if run.manifest.get("status") != "completed":
        print(f"{path}: status {run.manifest.get('status')}: {_one_line(run.manifest.get('reason'))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infercost", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"infercost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="replay a workload against one deployment and measure it")
    run.add_argument("workload", help="workload YAML")
    run.add_argument("--deployment", "-d", help="deployment YAML (default: bundled SmolLM2 on vLLM)")
    run.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE",
                     help="override a deployment field, e.g. --set max_num_seqs=8 (repeatable)")
    run.add_argument("--workload-set", "-w", action="append", default=[], metavar="KEY=VALUE",
                     help="override a workload field, e.g. -w traffic.rate=4 (repeatable)")
    run.add_argument("--results-dir", default=os.environ.get("INFERCOST_RESULTS", "results"))
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(func=cmd_run)

    quality = sub.add_parser("quality", help="score a deployment's greedy answers against references or a baseline")
    quality.add_argument("workload", help="workload YAML (its `quality` section sets scorers and target)")
    quality.add_argument("--deployment", "-d", help="deployment YAML (default: bundled SmolLM2 on vLLM)")
    quality.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE")
    quality.add_argument("--workload-set", "-w", action="append", default=[], metavar="KEY=VALUE")
    quality.add_argument("--results-dir", default=os.environ.get("INFERCOST_RESULTS", "results"))
    quality.add_argument("--worst", type=int, default=5, help="how many of the worst answers to show")
    quality.add_argument("--json", action="store_true")
    quality.set_defaults(func=cmd_quality)

    cap = sub.add_parser("capacity", help="the highest load at which the workload's SLOs hold (real probes)")
    cap.add_argument("workload", help="workload YAML (its slo section is what must hold)")
    cap.add_argument("--deployment", "-d", help="deployment YAML (default: bundled SmolLM2 on vLLM)")
    cap.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE")
    cap.add_argument("--workload-set", "-w", action="append", default=[], metavar="KEY=VALUE")
    cap.add_argument("--mode", choices=["rate", "concurrency"], help="open-loop rate (default) or closed-loop users")
    cap.add_argument("--start", type=float, help="first load (default 1)")
    cap.add_argument("--precision", type=float, help="bracket width to stop at, as a share (default 0.05)")
    cap.add_argument("--max-load", type=float)
    cap.add_argument("--max-probes", type=int)
    cap.add_argument("--tail-samples", type=int, help="observations beyond the strictest percentile (default 10)")
    cap.add_argument("--min-requests", type=int)
    cap.add_argument("--requests", type=int, help="fixed requests per probe instead of the sample rule")
    cap.add_argument("--max-in-flight", type=int, help="stop a probe whose queue exceeds this")
    cap.add_argument("--results-dir", default=os.environ.get("INFERCOST_RESULTS", "results"))
    cap.add_argument("--quiet", "-q", action="store_true")
    cap.add_argument("--json", action="store_true")
    cap.set_defaults(func=cmd_capacity)

    from infercost.cli_cost import add_parsers as add_cost_parsers

    add_cost_parsers(sub)
    from infercost.cli_project import add_parsers as add_project_parsers

    add_project_parsers(sub)
    from infercost.cli_search import add_parsers as add_search_parsers

    add_search_parsers(sub)

    schema = sub.add_parser("schema", help="print the JSON Schema of a spec")
    schema.add_argument("kind", choices=["workload", "deployment"], nargs="?", default="workload")
    schema.add_argument("--output", "-o")
    schema.set_defaults(func=cmd_schema)

    validate = sub.add_parser("validate", help="check a workload (and deployment) without running anything")
    validate.add_argument("workload")
    validate.add_argument("--deployment", "-d")
    validate.set_defaults(func=cmd_validate)

    models = sub.add_parser("models", help="list bundled model aliases and their cache state")
    models.add_argument("--prepare", nargs="+", metavar="ALIAS", help="convert these aliases now")
    models.set_defaults(func=cmd_models)

    engines = sub.add_parser("engines", help="what each engine supports on this machine (probed, cached)")
    engines.add_argument("--refresh", action="store_true", help="probe again instead of reading the cache")
    engines.add_argument("--json", action="store_true")
    engines.set_defaults(func=cmd_engines)

    show = sub.add_parser("show", help="print the summary of a stored run")
    show.add_argument("run", help="results/<run-id> directory")
    show.set_defaults(func=cmd_show)
    return parser


def _terminate(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # No model hub is reachable on many serving hosts; never wait on one. Users can override.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    # SIGTERM (a scheduler, `kill`) ends a command like Ctrl-C: engines and their worker processes are stopped and
    # what was measured is kept, instead of leaving orphaned engine processes holding memory.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except InputError as exc:
        from infercost.redact import redact_text

        print(f"infercost: error: {redact_text(str(exc))}", file=sys.stderr)  # never a key or URL credential
        return exc.exit_code
    except RunFailed as exc:
        from infercost.redact import redact_text

        print(f"infercost: failed: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        print("infercost: interrupted; what was measured so far is kept in the results directory", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        from infercost.store.runs import ResultsWriteError

        if not isinstance(exc, ResultsWriteError):
            raise
        print(f"infercost: writing results failed: {exc}; what was written so far is kept", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
