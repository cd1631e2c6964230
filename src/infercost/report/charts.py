"""Charts as inline SVG (matplotlib, no JavaScript, nothing fetched): the report opens offline. Text in charts is
drawn as SVG text that matplotlib escapes."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from infercost.spec.vocabulary import PRICING_MODELS  # noqa: E402

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inlined in HTML


def _short(label: str, n: int = 48) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def pareto(trials: list[dict[str, Any]], front: list[dict[str, Any]]) -> str | None:
    pts = [t for t in trials if t["status"] == "feasible" and t["cost_per_1k"] and t["ttft_p95_ms"]]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    scored = [t for t in pts if t["quality"] is not None]
    unscored = [t for t in pts if t["quality"] is None]
    if scored:
        sc = ax.scatter([t["ttft_p95_ms"] for t in scored], [t["cost_per_1k"] for t in scored],
                        c=[t["quality"] for t in scored], cmap="viridis", s=28, edgecolors="black", linewidths=0.3)
        fig.colorbar(sc, ax=ax, label="quality score")
    if unscored:  # a colour map masks a missing value, which would hide the point: drawn hollow instead
        ax.scatter([t["ttft_p95_ms"] for t in unscored], [t["cost_per_1k"] for t in unscored], s=28,
                   facecolors="none", edgecolors="dimgray", linewidths=0.8, label="quality not measured")
    f = sorted([p for p in front if p["ttft_p95_ms"]], key=lambda p: p["ttft_p95_ms"])
    if f:
        ax.plot([p["ttft_p95_ms"] for p in f], [p["cost_per_1k_requests"] for p in f], color="crimson", lw=1,
                label="Pareto front")
    if f or unscored:
        ax.legend(loc="upper right")
    ax.set_xlabel("p95 TTFT at capacity (ms)")
    ax.set_ylabel("$ per 1k requests")
    ax.set_yscale("log")
    ax.set_title("Cost vs latency (feasible configurations)")
    return _svg(fig)


def capacity_bars(trials: list[dict[str, Any]], top: int = 12) -> str | None:
    pts = sorted([t for t in trials if t["capacity_rps"]], key=lambda t: t["cost_per_1k"] or 1e9)[:top]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(pts) + 1))
    ax.barh([_short(t["config"]) for t in pts][::-1], [t["capacity_rps"] for t in pts][::-1],
            color=["#4c72b0" if t["kind"] == "measured" else "#dd8452" for t in pts][::-1])
    ax.set_xlabel("capacity under SLO (req/s per replica); blue measured, orange projected")
    ax.set_xscale("log")
    ax.set_title("Capacity per configuration")
    return _svg(fig)


def latency_bars(trials: list[dict[str, Any]], top: int = 8) -> str | None:
    pts = sorted([t for t in trials if t["status"] == "feasible" and t["slo_observed"]],
                 key=lambda t: t["cost_per_1k"] or 1e9)[:top]
    keys = sorted({k for t in pts for k, v in t["slo_observed"].items() if v is not None and k.endswith(
        ("p50", "p90", "p95", "p99")) and not k.startswith("error")})
    if not pts or not keys:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(pts) * max(1, len(keys) / 2) + 1))
    height = 0.8 / len(keys)
    for i, key in enumerate(keys):
        ax.barh([j + i * height for j in range(len(pts))], [t["slo_observed"].get(key) or 0 for t in pts],
                height=height, label=key.replace("_ms.", " "))
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(pts))], [_short(t["config"], 40) for t in pts])
    ax.invert_yaxis()
    ax.set_xlabel("ms at the capacity probe")
    ax.legend(fontsize=7)
    ax.set_title("Latency percentiles per configuration")
    return _svg(fig)


def monthly_by_pricing(placements: list[dict[str, Any]]) -> str | None:
    rows = [r for r in placements if r.get("monthly_cost")]
    if not rows:
        return None
    best: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (f"{r['provider']} {r['region']}", r["pricing"])
        best[key] = min(best.get(key, float("inf")), r["monthly_cost"])
    places = sorted({k[0] for k in best})[:8]
    models = [m for m in PRICING_MODELS if any(k[1] == m for k in best)]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        ax.bar([j + i * width for j in range(len(places))], [best.get((p, m), 0) for p in places], width=width,
               label=m.replace("_", " "))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(places))], places, rotation=30, ha="right")
    ax.set_ylabel("$ per month at the workload's demand")
    ax.legend(fontsize=7)
    ax.set_title("Monthly cost by placement and pricing model")
    return _svg(fig)


def cost_vs_volume(curves: list[dict[str, Any]], demand_per_day: float | None,
                   crossovers: list[float] | None = None) -> str | None:
    """Monthly cost against requests per day: self-hosted configurations solid (steps: whole replicas), APIs
    dashed (a line: per token), the workload's own demand and the cross-over volume marked."""
    curves = [c for c in curves if c.get("points")]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    for c in curves:
        xs, ys = zip(*c["points"])
        ax.plot(xs, ys, lw=1.3, ls="--" if c["kind"] == "api" else "-", label=_short(c["label"], 90))
    if demand_per_day:
        ax.axvline(demand_per_day, color="black", lw=0.8, ls=":")
        ax.annotate(f"this workload: {demand_per_day:,.0f}/day", (demand_per_day, 1),
                    xycoords=("data", "axes fraction"), xytext=(-3, -10), textcoords="offset points", fontsize=8,
                    ha="right")
    for x in crossovers or []:
        ax.axvline(x, color="crimson", lw=0.8, alpha=0.7)
        ax.annotate(f"cross-over {x:,.0f}/day", (x, 0), xycoords=("data", "axes fraction"), xytext=(3, 4),
                    textcoords="offset points", fontsize=8, color="crimson")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests per day")
    ax.set_ylabel("$ per month")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    ax.set_title("Build or buy: monthly cost against daily volume")
    return _svg(fig)
