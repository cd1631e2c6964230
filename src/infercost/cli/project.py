"""`infercost calibrate` and `infercost project`: fit the step-time model to measured runs here, and project
latency, capacity and cost on hardware that is not at hand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infercost.cli.common import engine_output_to_stderr, options_from, parent

def cmd_calibrate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from infercost import api
    from infercost.capacity import CapacityOptions
    from infercost.projection.calibration_runs import calibrate
    from infercost.report.console import RichProgress

    console = Console(highlight=False, stderr=True)
    dirs = [Path(d) for d in args.from_dirs or ()]
    if args.workload:
        options = options_from(args, CapacityOptions, ("precision", "tail_samples", "min_requests", "start"))
        for mns in [int(x) for x in args.max_num_seqs.split(",")]:
            with engine_output_to_stderr(), RichProgress() as progress:
                result = api.capacity(args.workload, args.deployment, options=options, results_dir=args.results_dir,
                                      progress=progress, workload_overrides=args.workload_set,
                                      deployment_overrides=[*args.set, f"max_num_seqs={mns}"])
            console.print(f"max_num_seqs={mns}: capacity {result.capacity_rps} req/s ({result.status})")
            if result.provenance.get("capacity_dir"):
                dirs.append(Path(result.provenance["capacity_dir"]))
    cal = calibrate(dirs, output=args.output, results_dir=args.results_dir, refresh_probe=args.refresh_probe)
    if args.json:
        print(json.dumps({"calibration": str(cal.path), "efficiency": cal.efficiency.model_dump(), "fit": cal.fit,
                          "validation": cal.validation, "rows": cal.rows}, indent=2))
        return 0
    from infercost.report.projection_console import print_calibration

    print_calibration(Console(highlight=False), cal.efficiency, cal.fit, cal.rows, cal.validation, cal.path)
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from rich.console import Console

    from infercost import api
    from infercost.capacity import CapacityOptions
    from infercost.report.projection_console import print_projection

    options = options_from(args, CapacityOptions, ("precision",))
    # without a deployment file: vLLM's own defaults for a GPU server (bf16, 90% memory, 256 sequences)
    result = api.project(args.workload, args.deployment, hardware=args.hardware, workload_overrides=args.workload_set,
                         deployment_overrides=args.set, model=args.model, devices=args.devices, dtype=args.dtype,
                         calibration=args.calibration, options=options, catalog=args.catalog,
                         price=not args.no_cost)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
        return 0
    print_projection(Console(highlight=False), result.projector, result.lengths, result.summary, result.capacity,
                     result.cost[: args.top], (result.capacity_low_rps, result.capacity_high_rps), result.confidence)
    return 0


def add_parsers(sub) -> None:
    cal = sub.add_parser("calibrate", parents=[parent("deployment", "results", "json")],
                         help="fit the projection model to measured capacity searches here, with a leave-one-out "
                              "validation")
    cal.add_argument("workload", nargs="?", help="workload to measure (omit with --from)")
    cal.add_argument("--max-num-seqs", default="2,4,8", help="configurations to measure (comma-separated)")
    cal.add_argument("--from", dest="from_dirs", nargs="+", metavar="DIR", help="existing capacity directories")
    cal.add_argument("--precision", type=float)
    cal.add_argument("--tail-samples", type=int)
    cal.add_argument("--min-requests", type=int)
    cal.add_argument("--start", type=float)
    cal.add_argument("--refresh-probe", action="store_true", help="measure this CPU's bandwidth/FLOPs again")
    cal.add_argument("--output", "-o", help="calibration file (default: results/calibration/<engine-cpu-model>.json)")
    cal.set_defaults(func=cmd_calibrate)

    proj = sub.add_parser("project", parents=[parent("deployment", "catalog", "json")],
                          help="projected latency, capacity and cost on hardware not at hand")
    proj.add_argument("workload")
    proj.add_argument("--hardware", "-H", required=True, help="accelerator name (H100-SXM, L4, ...) or host-cpu")
    proj.add_argument("--devices", type=int, help="accelerators per replica (tensor parallel)")
    proj.add_argument("--model", "-m", help="model shape: preset (llama-3.1-8b, ...), config.json, or alias")
    proj.add_argument("--dtype", help="override the deployment's dtype (auto on a GPU means bfloat16)")
    proj.add_argument("--calibration", help="calibration file (default: documented defaults for the hardware)")
    proj.add_argument("--precision", type=float)
    proj.add_argument("--no-cost", action="store_true")
    proj.add_argument("--top", type=int, default=8)
    proj.set_defaults(func=cmd_project)
