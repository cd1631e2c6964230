"""`infercost crosscheck`: infercost's figures beside those of vLLM's own benchmark client, on one server."""

from __future__ import annotations

import argparse
from pathlib import Path

from infercost.cli.common import EXIT_NOT_MET, EXIT_OK, console, parent


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "crosscheck", parents=[parent("json", "quiet")],
        help="compare infercost's TTFT, TPOT and throughput with `vllm bench serve` on one vLLM server",
        description="Replays one synthetic workload (fixed input/output lengths, ignore_eos, constant arrivals) "
        "through `vllm bench serve` and through infercost, interleaved A B A B, against a vLLM server started here "
        "with the bundled model (or --base-url), and compares the medians: TTFT within 10%, TPOT and request "
        "throughput within 5%, or within the run-to-run spread when that is wider. Exit status 1 when they "
        "disagree.")
    p.add_argument("--base-url", help="OpenAI base URL of a running vLLM server, e.g. http://127.0.0.1:8000/v1 "
                   "(default: start one on loopback)")
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="bundled alias or HF-style directory served when starting a server (default: %(default)s)")
    p.add_argument("--served-model", help="with --base-url: the model name it serves (default: the first listed)")
    p.add_argument("--tokenizer", help="with --base-url: bundled alias or directory of its tokenizer "
                   "(default: --model)")
    p.add_argument("--input-tokens", type=int, default=128, help="prompt tokens per request (default: %(default)s)")
    p.add_argument("--output-tokens", type=int, default=32, help="output tokens per request (default: %(default)s)")
    p.add_argument("--requests", type=int, default=48, help="requests per run, at least 40 (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="runs per tool, at least 2 (default: %(default)s)")
    p.add_argument("--rate", type=float, help="arrivals per second (default: --rate-share of the closed-loop "
                   "throughput measured first)")
    p.add_argument("--rate-share", type=float, default=0.6, help="share of the sustained throughput to replay at "
                   "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", help="where vLLM's result files and the logs go (default: a temporary directory)")
    p.set_defaults(func=cmd_crosscheck)


def _settings(args: argparse.Namespace):
    from pydantic import ValidationError

    from infercost.crosscheck import Settings
    from infercost.errors import InputError

    try:
        return Settings(input_tokens=args.input_tokens, output_tokens=args.output_tokens, num_requests=args.requests,
                        rounds=args.rounds, rate_rps=args.rate, rate_share=args.rate_share, seed=args.seed)
    except ValidationError as exc:
        err = exc.errors()[0]
        option = {"num_requests": "--requests", "rate_rps": "--rate"}.get(str(err["loc"][0]), None)
        option = option or "--" + str(err["loc"][0]).replace("_", "-")
        raise InputError(err["msg"], source=option) from None


def cmd_crosscheck(args: argparse.Namespace) -> int:
    from infercost.cli.common import engine_output_to_stderr
    from infercost.crosscheck import crosscheck

    settings = _settings(args)
    err = console(stderr=True)
    say = (lambda message: None) if args.quiet else (lambda message: err.print(f"[dim]crosscheck:[/] {message}"))
    with engine_output_to_stderr():
        result = crosscheck(args.base_url, model=args.model, served_model=args.served_model,
                            tokenizer=args.tokenizer, settings=settings,
                            workdir=Path(args.work_dir) if args.work_dir else None, progress=say)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print_crosscheck(console(), result)
    return EXIT_OK if result.agree else EXIT_NOT_MET


def _fmt(metric: str, value: float) -> str:
    return f"{value:.3f}" if metric == "request_throughput_rps" else f"{value:.1f}"


def print_crosscheck(out, result) -> None:
    from rich.table import Table

    from infercost.crosscheck import LABELS

    s = result.settings
    m = result.machine
    sustained = f" ({s.rate_share:.0%} of {result.sustained_rps:.2f} sustained)" if result.sustained_rps else ""
    out.print(f"[bold]infercost vs vllm bench serve[/], {s.rounds} rounds each (A B A B), {s.num_requests} requests "
              f"per run, {s.input_tokens} in / {s.output_tokens} out tokens, ignore_eos, constant arrivals at "
              f"{result.rate_rps:g} req/s{sustained}")
    out.print(f"server: {result.server['base_url']} ({result.server['served_model']}, {result.server['started']}); "
              f"{m.get('cpu')}, {m.get('cores')} cores; {m.get('vllm')}; {result.date}")
    table = Table(show_edge=False)
    for name in ("metric", "infercost", "spread", "vLLM", "spread", "difference", "bound", "agree"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for c in result.comparisons:
        ti, tv = result.tools["infercost"], result.tools["vllm"]
        bound = "shown" if c.bound is None else f"±{c.bound:.1%} ({c.bound_source})"
        verdict = "" if c.agree is None else ("[green]yes[/]" if c.agree else "[red]no[/]")
        table.add_row(LABELS[c.metric], _fmt(c.metric, c.infercost), f"{ti.spread[c.metric]:.1%}",
                      _fmt(c.metric, c.vllm), f"{tv.spread[c.metric]:.1%}", f"{c.difference:+.1%}", bound, verdict)
    out.print(table)
    rounds = Table(show_edge=False, title="each run")
    for name in ("tool", "round", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "req/s", "req/s from 1st send",
                 "ok/failed"):
        rounds.add_column(name, justify="left" if name == "tool" else "right")
    for r in result.runs:
        first = r.request_throughput_from_first_send_rps
        rounds.add_row(r.tool, str(r.round + 1), f"{r.ttft_p50_ms:.1f}", f"{r.ttft_p99_ms:.1f}",
                       f"{r.tpot_p50_ms:.2f}", f"{r.tpot_p99_ms:.2f}", f"{r.request_throughput_rps:.3f}",
                       "" if first is None else f"{first:.3f}", f"{r.completed}/{r.failed}")
    out.print(rounds)
    out.print("each tool's figure is the median of its rounds; spread: (max - min) / median; difference: (infercost - vLLM) / vLLM; the bound is "
              "the fixed tolerance or, when wider, the larger spread. vLLM's request throughput counts its duration "
              "from before its first arrival gap; 'req/s from 1st send' is its requests over infercost's span.")
    out.print("agree" if result.agree else "[red]disagree[/]")
