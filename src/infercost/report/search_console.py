"""Terminal output for a study."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console


def print_study(console: Console, result: dict[str, Any], frame: pd.DataFrame) -> None:
    console.print(f"study {result['study']}: {result['trials']} trials, {result['feasible']} feasible "
                  f"({result['elapsed_s']:.0f} s); storage {result['storage']}")
    if not frame.empty:
        cols = ["trial", "status", "kind", "model", "engine", "precision", "max_num_seqs", "hardware", "pricing",
                "capacity_rps", "cost_per_1k", "quality"]
        with pd.option_context("display.width", 200, "display.max_rows", 200):
            console.print(frame.sort_values("cost_per_1k", na_position="last")[cols].head(15).to_string(index=False),
                          markup=False)
    for r in result["rejected"][:8]:
        console.print(f"rejected trial {r['trial']}: {r['config']}: {r['reason']}", markup=False)
    if not result["best"]:
        console.print("[red]no feasible configuration[/]")
        return
    for b in result["best"]:
        o = b["outcome"]
        cost = o["cost"]
        base = (result.get("baseline") or {}).get("config")
        savings = ", today's plan (the baseline): keep it" if base is not None and base == o["config"] else \
            f", {b['savings']:.0%} cheaper than the baseline" if b.get("savings") is not None else \
            (f"; no saving against the baseline is claimed: {b['savings_withheld']}" if b.get("savings_withheld") else "")
        figures = (f"${cost['monthly_cost']:,.0f}/month at the workload's demand, ${cost['cost_per_1k_requests']:.5f} "
                   "per 1k requests served" if cost.get("monthly_cost") is not None else
                   f"${cost['cost_per_1k_requests']:.5f} per 1k requests at capacity (no demand: no bill)")
        console.print(f"[bold]best[/]: {b['config']} → {figures} on {cost['provider']} {cost['region']} "
                      f"{cost['sku']} ({o['kind']}){savings}; binding: {o['binding']}", markup=True)
