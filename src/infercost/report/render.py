"""Render a Recommendation as report.md, a self-contained report.html (inline SVG charts, no scripts, nothing
fetched), report.json and the FOCUS CSV. Nothing is computed here: every figure is the Recommendation's. HTML is
autoescaped, so a prompt or answer holding `<script>` shows as text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from infercost.cost.focus import write_focus
from infercost.report import charts
from infercost.search.recommendation import Recommendation


def _num(v: Any, digits: int = 2) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _money(v: Any, digits: int = 2) -> str:
    return "—" if v is None else f"${v:,.{digits}f}"


def _pct(v: Any) -> str:
    return "—" if v is None else f"{v:.0%}" if abs(v) >= 0.1 else f"{v:.1%}"


def _md(v: Any) -> str:
    """Text from workloads and models in markdown: no pipes (table cells) or newlines. A tag is neutralised with a
    markdown backslash escape, not an HTML entity: the file is read as plain text too, where `&lt;` is noise."""
    return str(v or "").replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<").replace("\n", " ")


def _volume_chart(b: dict[str, Any] | None) -> str | None:
    if not b or not b.get("curves"):
        return None
    crossing = b.get("crossover_requests_per_day")
    return charts.cost_vs_volume(b["curves"], b.get("demand_requests_per_day"), [crossing] if crossing else None)


def write_report(recommendation: Recommendation, out_dir: str | Path) -> dict[str, Path]:
    """The files, by kind: json, md, html, focus, and volume_chart where there is a build-or-buy chart."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = recommendation.to_json()
    focus = out / "focus.csv"
    write_focus(recommendation.focus_rows, focus)
    svg = {
        "pareto": charts.pareto(report["all_trials"], report["pareto"]),
        "capacity": charts.capacity_bars(report["all_trials"]),
        "latency": charts.latency_bars(report["all_trials"]),
        "monthly": charts.monthly_by_pricing(report["placements"]),
        "volume": _volume_chart(report.get("build_or_buy")),
    }
    report["charts"] = sorted(k for k, v in svg.items() if v)
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html", "focus": focus}
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    env = Environment(loader=PackageLoader("infercost.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default_for_string=True), trim_blocks=True,
                      lstrip_blocks=True)
    helpers = {"num": _num, "money": _money, "pct": _pct, "md": _md}
    paths["html"].write_text(env.get_template("report.html.j2").render(r=report, charts=svg, focus_file=focus.name,
                                                                        **helpers), encoding="utf-8")
    md_env = Environment(loader=PackageLoader("infercost.report", "templates"), autoescape=False, trim_blocks=True,
                         lstrip_blocks=True)
    volume = None
    if svg["volume"]:  # markdown cannot inline SVG: the chart goes beside it
        paths["volume_chart"] = volume = out / "cost-vs-volume.svg"
        volume.write_text(svg["volume"], encoding="utf-8")
    paths["md"].write_text(md_env.get_template("report.md.j2").render(
        r=report, focus_file=focus.name, volume_chart=volume.name if volume else None, **helpers), encoding="utf-8")
    return paths
