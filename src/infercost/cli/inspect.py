"""`infercost schema`, `validate`, `models`, `engines` and `show`: the specs, the bundled models, what this
machine's engines support and stored runs; nothing is measured."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infercost.cli.common import console, one_line
from infercost.errors import InputError


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
    console().print(table)
    return 0


def cmd_engines(args: argparse.Namespace) -> int:
    from rich.table import Table

    from infercost.engines.capabilities import capabilities

    table_data = capabilities(refresh=args.refresh)
    if args.json:
        print(json.dumps(table_data, indent=2))
        return 0
    console = console()
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
    print_summary(console(), run.manifest, run.summary)
    if run.manifest.get("status") != "completed":
        print(f"{path}: status {run.manifest.get('status')}: {one_line(run.manifest.get('reason'))}")
    return 0


def add_parsers(sub) -> None:
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
