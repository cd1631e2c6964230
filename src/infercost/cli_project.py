"""`infercost calibrate` and `infercost project`: fit the step-time model to measured runs here, and project
latency, capacity and cost on hardware that is not at hand."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from pathlib import Path

from infercost.errors import InputError
from infercost.redact import redacted_command

CALIBRATION_DIR = "calibration"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def calibration_path(results_dir: str, engine: str, hardware: dict, model: str) -> Path:
    where = f"{hardware.get('cpu_model')}-{hardware.get('cpu_usable_cores')}c"
    if hardware.get("gpus"):
        where = f"{hardware['gpus'][0].get('name')}"
    return Path(results_dir) / CALIBRATION_DIR / f"{engine}-{_slug(where)}-{_slug(model)}.json"


def cmd_calibrate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from infercost.capacity import CapacityOptions
    from infercost.capacity.measured import measure_capacity
    from infercost.projection.calibrate import Steps, fit, save_calibration
    from infercost.projection.hardware import host_cpu
    from infercost.projection.shape import load_shape
    from infercost.projection.validate import (leave_one_out, load_measured, recorded_hardware, same_machine,
                                               summarise_errors)
    from infercost.provenance import hardware as this_hardware
    from infercost.spec import load_deployment, load_workload
    from infercost.spec.loader import validate
    from infercost.store import RunStore
    from infercost.store.runs import stored_path, update_manifest

    console = Console(highlight=False, stderr=True)
    dirs = [Path(d) for d in args.from_dirs or ()]
    if args.workload:
        workload = load_workload(args.workload, args.workload_set)
        options = validate(CapacityOptions, {k: v for k, v in {
            "precision": args.precision, "tail_samples": args.tail_samples, "min_requests": args.min_requests,
            "start": args.start}.items() if v is not None}, source="command line")
        from infercost.cli_common import engine_output_to_stderr as _engine_output_to_stderr
        from infercost.report.console import RichProgress

        for mns in [int(x) for x in args.max_num_seqs.split(",")]:
            deployment = load_deployment(args.deployment, [*args.set, f"max_num_seqs={mns}"])
            with _engine_output_to_stderr(), RichProgress() as progress:
                result = asyncio.run(measure_capacity(workload, deployment, RunStore(args.results_dir), options,
                                                      progress))
            console.print(f"max_num_seqs={mns}: capacity {result.capacity_rps} req/s ({result.status})")
            if result.provenance.get("capacity_dir"):
                dirs.append(Path(result.provenance["capacity_dir"]))
    if len(dirs) < 2:
        raise InputError("calibration needs at least two measured configurations (--max-num-seqs a,b or --from)")
    configs = [load_measured(d) for d in dirs]
    first = configs[0]
    hw = recorded_hardware(configs)  # the machine the runs were measured on, not necessarily this one
    if hw is None or args.refresh_probe:
        here = this_hardware()
        elsewhere = [c for c in configs if not same_machine(c.machine, here)]
        if elsewhere:
            m = elsewhere[0].machine
            raise InputError(f"{elsewhere[0].directory} was measured on another machine ({m.get('cpu_model')}, "
                             f"{m.get('cpu_usable_cores')} cores): its host probe (bandwidth, FLOPs) is not recorded "
                             f"with it and can only be measured there", field="--from")
        hw = host_cpu(refresh=args.refresh_probe)
        for c in configs:  # recorded with the runs, so a later calibration or test uses these figures anywhere
            update_manifest(c.directory, host_probe=hw.model_dump())
    model, dtype = first.deployment["model"], first.engine.get("dtype") or first.deployment.get("dtype")
    model_dir = first.engine.get("model_dir")  # a path on the machine that measured: this one may not have it
    shape = load_shape(model_dir if model_dir and Path(model_dir).is_dir() else model)
    shape = shape.model_copy(update={"name": model})
    eff, stats = fit(Steps.concat([c.steps for c in configs]), shape, hw, dtype,
                     source=f"calibrated on {len(configs)} measured configurations ({', '.join(c.label for c in configs)})")
    rows = leave_one_out(configs, shape, hw, dtype)
    errors = summarise_errors(rows)
    if errors.get("capacity_rps_mae") is not None:
        eff = eff.model_copy(update={"expected_error": max(errors.get("capacity_rps_mae", 0),
                                                           errors.get("tpot_mean_ms_mae", 0), 0.05)})
    machine = first.machine
    out = Path(args.output) if args.output else calibration_path(args.results_dir, first.engine.get("engine", "vllm"),
                                                                  machine, model)
    save_calibration(out, {
        "engine": first.engine.get("engine"), "engine_version": first.engine.get("vllm_version"), "model": model,
        "dtype": dtype, "hardware": hw.model_dump(), "machine": machine, "efficiency": eff.model_dump(),
        "fit": stats, "validation": {"method": "leave one configuration out", "errors": errors, "rows": rows},
        "runs": [stored_path(d, out.parent) for d in dirs], "command": redacted_command(os.sys.argv),
    })
    if args.json:
        print(json.dumps({"calibration": str(out), "efficiency": eff.model_dump(), "fit": stats,
                          "validation": errors, "rows": rows}, indent=2))
        return 0
    from infercost.report.projection_console import print_calibration

    print_calibration(Console(highlight=False), eff, stats, rows, errors, out)
    return 0


def _projector(args, deployment, shape):
    from infercost.projection.calibrate import load_calibration
    from infercost.projection.hardware import HOST, Hardware, get_hardware
    from infercost.projection.project import Projector
    from infercost.projection.steptime import DEFAULT_CPU, DEFAULT_GPU

    hardware = get_hardware(args.hardware)
    if args.calibration:
        eff, data = load_calibration(args.calibration)
        eff = eff.model_copy(update={"source": f"{eff.source} ({args.calibration})"})
        if hardware.name == HOST:
            hardware = Hardware.model_validate(data["hardware"])  # efficiencies are relative to that probe
    else:
        eff = DEFAULT_CPU if hardware.name == HOST else DEFAULT_GPU
    get = lambda k, default=None: getattr(deployment, k, default)  # noqa: E731
    return Projector(shape, hardware, eff, dtype=args.dtype or (get("dtype") if get("dtype") != "auto" else None)
                     or "bfloat16", quantization=get("quantization") if get("quantization") not in (None, "none")
                     else None, kv_cache_dtype=get("kv_cache_dtype", "auto") or "auto",
                     devices=args.devices or get("tensor_parallel_size", 1) or 1,
                     max_num_seqs=get("max_num_seqs", 256), max_num_batched_tokens=get("max_num_batched_tokens"),
                     enable_prefix_caching=get("enable_prefix_caching", True),
                     memory_utilization=(get("gpu_memory_utilization") or 0.9) if hardware.name != HOST else 0.9,
                     max_model_len=get("max_model_len") or 4096)


def cmd_project(args: argparse.Namespace) -> int:
    from rich.console import Console

    from infercost.capacity import CapacityOptions
    from infercost.projection.project import workload_lengths
    from infercost.projection.shape import load_shape
    from infercost.report.projection_console import print_projection
    from infercost.spec import load_deployment, load_workload
    from infercost.spec.loader import validate

    workload = load_workload(args.workload, args.workload_set)
    # without a file: vLLM's own defaults for a GPU server (bf16, 90% memory, 256 sequences)
    deployment = load_deployment(args.deployment, args.set,
                                 default={"engine": "vllm", "model": args.model or "smollm2-135m-instruct"})
    shape = load_shape(args.model or deployment.model)
    projector = _projector(args, deployment, shape)
    counter = None
    try:
        from infercost.models.bundled import BUNDLED

        if (args.model or deployment.model) in BUNDLED:
            from transformers import AutoTokenizer

            from infercost.models import resolve_model

            tok = AutoTokenizer.from_pretrained(str(resolve_model(args.model or deployment.model)))
            counter = lambda text: len(tok(text)["input_ids"])  # noqa: E731
    except Exception:
        counter = None
    lengths = workload_lengths(workload, counter)
    summary = projector.run(workload, lengths) if projector.memory.fits else None
    options = validate(CapacityOptions, {k: v for k, v in {"precision": args.precision}.items() if v is not None},
                       source="command line")
    capacity = asyncio.run(projector.capacity(workload, lengths, options))
    rows = []
    if capacity.capacity_rps and not args.no_cost:
        from infercost.cost.catalog import load_catalog
        from infercost.cost.pricing import Throughput, cost_rows

        catalog = load_catalog(args.catalog or ())
        acc = projector.hardware.name
        from infercost.cost.placement import accelerator_offers

        offers = accelerator_offers(catalog, acc, projector.config["devices"]) if acc != "host-cpu" else []
        tp = Throughput(kind="projected", capacity_rps=capacity.capacity_rps,
                        mean_input_tokens=summary.mean_input_tokens if summary else None,
                        mean_output_tokens=summary.mean_output_tokens if summary else None,
                        workload=workload.name, deployment=capacity.deployment,
                        basis=f"projected capacity ({projector.efficiency.source}; expected error "
                              f"+-{projector.efficiency.expected_error:.0%})", tags=workload.tags.as_dict())
        rows = sorted(cost_rows(tp, offers, workload.demand), key=lambda r: r.cost_per_1k_requests)
    if args.json:
        print(json.dumps({"summary": summary.model_dump(mode="json") if summary else None,
                          "capacity": capacity.model_dump(mode="json"),
                          "cost": [r.model_dump(mode="json") for r in rows],
                          "provenance": projector.provenance(lengths)}, indent=2, default=str))
        return 0
    print_projection(Console(highlight=False), projector, lengths, summary, capacity, rows[: args.top])
    return 0


def add_parsers(sub) -> None:
    cal = sub.add_parser("calibrate", help="fit the projection model to measured capacity searches here, with a "
                                           "leave-one-out validation")
    cal.add_argument("workload", nargs="?", help="workload to measure (omit with --from)")
    cal.add_argument("--deployment", "-d")
    cal.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE")
    cal.add_argument("--workload-set", "-w", action="append", default=[], metavar="KEY=VALUE")
    cal.add_argument("--max-num-seqs", default="2,4,8", help="configurations to measure (comma-separated)")
    cal.add_argument("--from", dest="from_dirs", nargs="+", metavar="DIR", help="existing capacity directories")
    cal.add_argument("--precision", type=float)
    cal.add_argument("--tail-samples", type=int)
    cal.add_argument("--min-requests", type=int)
    cal.add_argument("--start", type=float)
    cal.add_argument("--refresh-probe", action="store_true", help="measure this CPU's bandwidth/FLOPs again")
    cal.add_argument("--output", "-o", help="calibration file (default: results/calibration/<engine-cpu-model>.json)")
    cal.add_argument("--results-dir", default=os.environ.get("INFERCOST_RESULTS", "results"))
    cal.add_argument("--json", action="store_true")
    cal.set_defaults(func=cmd_calibrate)

    proj = sub.add_parser("project", help="projected latency, capacity and cost on hardware not at hand")
    proj.add_argument("workload")
    proj.add_argument("--deployment", "-d", help="deployment YAML (model, precision, batching settings)")
    proj.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE")
    proj.add_argument("--workload-set", "-w", action="append", default=[], metavar="KEY=VALUE")
    proj.add_argument("--hardware", "-H", required=True, help="accelerator name (H100-SXM, L4, ...) or host-cpu")
    proj.add_argument("--devices", type=int, help="accelerators per replica (tensor parallel)")
    proj.add_argument("--model", "-m", help="model shape: preset (llama-3.1-8b, ...), config.json, or alias")
    proj.add_argument("--dtype", help="override the deployment's dtype (auto on a GPU means bfloat16)")
    proj.add_argument("--calibration", help="calibration file (default: documented defaults for the hardware)")
    proj.add_argument("--precision", type=float)
    proj.add_argument("--catalog", "-c", action="append")
    proj.add_argument("--no-cost", action="store_true")
    proj.add_argument("--top", type=int, default=8)
    proj.add_argument("--json", action="store_true")
    proj.set_defaults(func=cmd_project)
