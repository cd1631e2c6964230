"""Terminal output: live progress while a run goes, and the summary table at the end."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from infercost.capacity.measured import CapacityProgress
from infercost.loadgen import RequestRecord
from infercost.spec.deployment import Deployment
from infercost.spec.vocabulary import SLO_METRICS, STANDARD_STATS


class RichProgress(CapacityProgress):
    def __init__(self, console: Console | None = None):
        # Engines point descriptors 1 and 2 at their log file while they start; keep a copy of the terminal.
        console = console or Console(file=os.fdopen(os.dup(2), "w", buffering=1), highlight=False)
        self.console = console
        self.bar = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console, transient=False,
        )
        self.task = None
        self.failed = 0

    def __enter__(self) -> "RichProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def engine_starting(self, deployment: Deployment) -> None:
        self.task = self.bar.add_task(f"starting {deployment.engine} engine ({deployment.model})", total=None,
                                      status="")

    def engine_started(self, seconds: float) -> None:
        self.bar.update(self.task, total=1, completed=1, status=f"ready in {seconds:.1f} s")

    def run_started(self, planned: int | None) -> None:
        self.task = self.bar.add_task(getattr(self, "_probe_label", "requests"), total=planned, status="")
        self.failed = 0

    def probe_started(self, index: int, phase: str, load: float, mode: str, planned: int) -> None:
        unit = "users" if mode == "concurrency" else "req/s"
        self._probe_label = f"probe {index + 1} ({phase}) at {load:g} {unit}"

    def probe_done(self, probe: Any) -> None:
        verdict = "[green]pass[/]" if probe.passed else f"[red]fail[/]: {probe.reason}"
        self.bar.update(self.task, status=verdict)

    def request_done(self, record: RequestRecord) -> None:
        if record.warmup:
            return
        if not record.ok:
            self.failed += 1
        self.bar.update(self.task, advance=1, status=f"{self.failed} failed" if self.failed else "")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def summary_table(summary: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    stats = list(STANDARD_STATS)
    table.add_column("latency (ms)")
    for s in stats:
        table.add_column(s, justify="right")
    table.add_column("p95 95% CI", justify="right")  # from the run's own records (order statistics)
    for name in (*SLO_METRICS, "schedule_lag_ms"):
        dist = summary["latency"][name]
        ci = (dist.get("intervals") or {}).get("p95")
        table.add_row(f"{name.removesuffix('_ms')} (n={dist['count']})", *(_fmt(dist["stats"].get(s)) for s in stats),
                      f"{_fmt(ci[0])}–{_fmt(ci[1])}" if ci else "—")
    return table


def print_summary(console: Console, manifest: dict[str, Any], summary: dict[str, Any]) -> None:
    console.print(summary_table(summary, f"run {manifest['run_id']}"))
    s = summary
    goodput = _fmt(s["goodput_rps"], 3) + " req/s" if s["goodput_rps"] is not None else "— (no per-request SLO)"
    console.print(
        f"requests {s['completed']}/{s['requests']} completed, error rate {s['error_rate']:.1%}, "
        f"duration {s['duration_s']:.1f} s\n"
        f"throughput {s['request_throughput_rps']:.3f} req/s, {s['output_token_throughput_tps']:.1f} output tok/s, "
        f"{s['total_token_throughput_tps']:.1f} total tok/s; goodput {goodput}\n"
        f"tokens counted by: {', '.join(f'{k} ({v})' for k, v in s['token_count_sources'].items()) or '—'}"
    )
    if s["slo_checks"]:
        table = Table(title="SLO", title_justify="left")
        for col in ("metric", "stat", "bound", "observed", "verdict"):
            table.add_column(col)
        for c in s["slo_checks"]:
            table.add_row(c["metric"], c["stat"], _fmt(c["bound"], 3), _fmt(c["observed"], 3),
                          "[green]pass[/]" if c["passed"] else "[red]FAIL[/]")
        console.print(table)
    mem = s.get("memory") or {}
    if mem:
        gib = lambda key: f"{mem[key] / 2**30:.2f} GiB" if mem.get(key) is not None else "—"  # noqa: E731
        console.print(f"memory: weights {gib('weights_bytes')}, KV cache reserved {gib('kv_cache_bytes')}"
                      + (f" ({mem['kv_cache_tokens']:,} tokens)" if mem.get("kv_cache_tokens") else "")
                      + f", peak RSS {gib('peak_rss_bytes')} ({mem.get('peak_rss_scope')})"
                      + (f", peak GPU {gib('peak_gpu_used_bytes')}" if mem.get("peak_gpu_used_bytes") else ""))
    for error, count in list(s["errors"].items())[:5]:
        console.print(f"[red]{count} × {error}[/]", markup=True, highlight=False)
    if s.get("repeats"):
        print_repeats(console, s["repeats"])
    hw = manifest.get("hardware", {})
    engine = manifest.get("engine", {})
    console.print(
        f"measured on {hw.get('cpu_model')} ({hw.get('cpu_usable_cores')} cores"
        + (f", GPUs: {', '.join(g['name'] for g in hw.get('gpus', []))}" if hw.get("gpus") else "")
        + f"), engine {engine.get('engine')} "
        + " ".join(f"{k} {v}" for k, v in engine.items() if k.endswith("_version"))
        + (f", start-up {manifest['startup_s']:.1f} s" if manifest.get("startup_s") else "")
    )


def print_repeats(console: Console, repeats: dict[str, Any]) -> None:
    """Each replay's figures, and their spread across replays as the coefficient of variation (the figures above
    pool them)."""
    figures = [("request_throughput_rps", "req/s", 2), ("ttft_ms.p50", "ttft p50", 1), ("ttft_ms.p95", "ttft p95", 1),
               ("tpot_ms.p50", "tpot p50", 1), ("tpot_ms.p95", "tpot p95", 1), ("e2e_ms.p95", "e2e p95", 1),
               ("goodput_rps", "good/s", 2)]
    table = Table(title=f"{repeats['n']} replays on one engine (pooled above)", title_justify="left")
    for col in ("#", *(label for _, label, _ in figures), "SLO"):
        table.add_column(col, justify="right")
    for i, r in enumerate(repeats.get("runs", []), 1):
        slo = {True: "[green]pass[/]", False: "[red]FAIL[/]"}.get(r.get("slo_met"), r.get("status", "—"))
        table.add_row(str(i), *(_fmt(r.get(k), d) for k, _, d in figures), slo)
    spread = repeats.get("spread") or {}
    cvs = [(spread.get(k) or {}).get("cv") for k, _, _ in figures]
    table.add_row("cv", *("—" if cv is None else f"{cv:.1%}" for cv in cvs), "")
    console.print(table)
    console.print(f"replays kept under replays/; warm-up: {repeats.get('warmup', '?')}", highlight=False)


def print_quality(console: Console, summary: Any, worst: int = 5) -> None:
    s = summary

    def ci(interval: Any) -> str:
        return f" (95% CI {interval[0]:.3f}–{interval[1]:.3f})" if interval else ""

    what = f"agreement with {s.relative_to}" if s.relative_to else "score"
    console.print(f"quality of {s.deployment}: {s.evaluated}/{s.prompts} prompts evaluated"
                  + (" (stopped early: the target could no longer be met)" if s.stopped_early else "")
                  + (" — answers from cache, no engine started" if s.cache_hit else ""), markup=False)
    console.print(f"answers from {getattr(s, 'answers_from', 'this machine')}", markup=False)
    console.print(f"mean {what} {_fmt(s.mean_score, 3)}{ci(s.mean_score_ci95)}; pass rate (≥ {s.threshold:g}) "
                  f"{_fmt(s.pass_rate, 3)}{ci(s.pass_rate_ci95)}")
    if s.target_met is not None:
        verdict = "[green]met[/]" if s.target_met else f"[red]NOT met[/] (binding: {s.binding or 'stopped early'})"
        console.print(f"target {s.target and {k: v for k, v in s.target.items() if v is not None and k in ('mean_score', 'pass_rate', 'agreement')}}: {verdict}")
    if s.failing and worst:
        table = Table(title=f"worst answers ({min(worst, len(s.failing))} of {len(s.failing)} failing)",
                      title_justify="left")
        for col in ("id", "score", "prompt", "answer", "reference"):
            table.add_column(col, overflow="fold")
        for p in s.failing[:worst]:
            table.add_row(p.id, f"{p.score:.2f}", p.prompt[-120:], p.answer[:160], (p.reference or "")[:120])
        console.print(table)


def print_capacity(console: Console, result: Any) -> None:
    unit = "users" if result.mode == "concurrency" else "req/s"
    table = Table(title=f"capacity probes: {result.workload} on {result.deployment}", title_justify="left")
    keys = [k for k in dict.fromkeys(k for p in result.probes for k in p.slo_observed) if not k.startswith("error")]
    for col in ("#", "phase", f"load ({unit})", "done", "served req/s", "errors",
                *(k.replace("_ms.", " ") + " ms" for k in keys), "verdict"):
        table.add_column(col, overflow="fold")
    for p in result.probes:
        table.add_row(str(p.index + 1), p.phase, f"{p.load:g}", f"{p.completed}/{p.requests}",
                      _fmt(p.achieved_rps, 2), f"{(p.error_rate or 0):.1%}",
                      *(_fmt(p.slo_observed.get(k), 0) for k in keys),
                      "[green]pass[/]" if p.passed else f"[red]fail[/] {p.reason or ''}")
    console.print(table)
    console.print(f"requests per probe: {result.requests_per_probe} ({result.sample_rule})"
                  + (f"; {result.repeats} runs at each edge" if getattr(result, "repeats", 1) > 1 else ""))
    low, high = getattr(result, "capacity_low_rps", None), getattr(result, "capacity_high_rps", None)
    interval = ("" if low is None else f"interval [{low:.3f}, " + ("—" if high is None else f"{high:.3f}")
                + ") req/s served: the capacity lies between the highest load where every run passed and the lowest "
                  "above it where every run failed")
    stable = getattr(result, "stable", None)
    if stable is not None:
        verdict = (f"[green]stable[/]: all {result.repeats} runs agreed at each edge" if stable
                   else "[yellow]unstable within noise[/]: an edge's runs disagreed; the capacity reported is the "
                        "highest load at which every run passed")
    else:
        verdict = ""
    if result.capacity_load is None:
        console.print(f"[red]no capacity[/] ({result.status}): {result.reason}")
        if verdict:
            console.print(verdict)
        return
    bracket = (f"; the next load above, {result.failed_load:g} {unit}, failed" + (" every run" if stable is not None
               else "") + f" (bracket {result.precision_reached:.1%}, asked {result.precision_asked:.0%})"
               if result.failed_load is not None else "")
    console.print(f"[bold]capacity {result.capacity_load:g} {unit}[/] → {result.capacity_rps:.3f} req/s served, "
                  f"{_fmt(result.capacity_output_tps)} output tok/s{bracket}"
                  + (f"\n{interval}" if interval else "") + (f"\n{verdict}" if verdict else "")
                  + (f"\n[yellow]{result.reason}[/]" if result.reason else ""))
    spreads = getattr(result, "edge_spread", None) or {}
    for load, figures in spreads.items():
        parts = [f"{k.replace('_ms.', ' ')} {sp['min']:.4g}–{sp['max']:.4g}" + (" ms" if "_ms." in k else "")
                 for k, sp in figures.items() if sp and not k.startswith("error")]
        console.print(f"spread at {load} {unit} over {max((sp or {}).get('n', 0) for sp in figures.values())} runs: "
                      + ", ".join(parts), highlight=False)
