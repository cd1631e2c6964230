"""Terminal output for calibrations and projections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from infercost.report.cost_console import cost_table


def print_calibration(console: Console, eff: Any, stats: dict, rows: list[dict], errors: dict, path: Path) -> None:
    console.print(f"fitted: bandwidth efficiency {eff.bandwidth:.3f}, compute efficiency {eff.compute:.3f}, step "
                  f"overhead {eff.step_overhead_s * 1e3:.1f} ms, per-sequence {eff.per_seq_overhead_s * 1e3:.2f} ms; "
                  f"{stats['steps']} steps, median step error {stats['step_median_abs_rel_error']:.1%}")
    table = Table(title="leave one configuration out: calibrate on the others, predict this one", title_justify="left")
    for col in ("held out", "figure", "load (req/s)", "measured", "projected", "error"):
        table.add_column(col, justify="right" if col in ("measured", "projected", "error") else "left")
    for r in rows:
        table.add_row(r["held_out"], r["figure"], "—" if r["load"] is None else f"{r['load']:g}",
                      f"{r['measured']:.3g}", f"{r['projected']:.3g}", f"{r['abs_rel_error']:.1%}")
    console.print(table)
    console.print("mean absolute error: " + ", ".join(
        f"{k.removesuffix('_mae')} {v:.1%}" for k, v in errors.items() if k.endswith("_mae")))
    console.print(f"calibration: {path}")


def print_projection(console: Console, projector: Any, lengths: Any, summary: Any, capacity: Any,
                     rows: list, band: tuple[float | None, float | None] = (None, None), confidence: Any = None,
                     ) -> None:
    c, m, e = projector.config, projector.memory, projector.efficiency
    console.print(f"[bold]PROJECTED[/] {c['model']} ({c['quantization'] or c['dtype']}) on {c['devices']}x "
                  f"{c['hardware']}, max_num_seqs {c['max_num_seqs']}; expected error ±{e.expected_error:.0%}")
    console.print(f"memory: weights {m.weights_gb:.1f} GB of {m.usable_gb:.1f} GB usable, KV cache {m.kv_cache_gb:.1f} "
                  f"GB = {m.kv_capacity_tokens:,} tokens" + ("" if m.fits else f" — [red]does not fit[/]: {m.reason}"))
    if summary is not None:
        table = Table(title="projected latency at the workload's traffic (ms)", title_justify="left")
        for col in ("metric", "p50", "p90", "p95", "p99"):
            table.add_column(col)
        for name in ("ttft_ms", "tpot_ms", "e2e_ms"):
            s = summary.latency[name].stats
            table.add_row(name.removesuffix("_ms"), *(f"{s.get(k) or 0:,.1f}" for k in ("p50", "p90", "p95", "p99")))
        console.print(table)
        console.print(f"SLO at this traffic: {'met' if summary.slo_met else 'NOT met'}; throughput "
                      f"{summary.request_throughput_rps:.2f} req/s, {summary.output_token_throughput_tps:.0f} tok/s")
    if capacity.capacity_rps:
        console.print(f"projected capacity under SLO: [bold]{capacity.capacity_rps:g} req/s[/] per replica "
                      f"(next probe {capacity.failed_load} failed; {len(capacity.probes)} simulated probes)")
        if band[0] is not None or band[1] is not None:
            console.print(f"  at the error band's ends (simulated): {band[0] or 0:g} to {band[1] or 0:g} req/s")
        if confidence is not None:
            console.print(f"  confidence: {confidence.tier} — {confidence.note}", markup=False)
    else:
        console.print(f"no projected capacity: {capacity.status} {capacity.reason or ''}")
    if rows:
        console.print(cost_table(rows, "projected cost on catalog offers with this hardware"))
    console.print(f"efficiency: {e.source}")
    console.print(f"token lengths: {lengths.source}; hardware: {projector.hardware.source}")
