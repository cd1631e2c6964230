"""The recommendation report for a small projected study: sections in order, numbers that match report.json and the
study, and escaping. Answers come from a scripted engine (a fake: no real model can be made to answer with a
`<script>` tag on demand), cached through the real quality path, so the report shows them."""

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from infercost.engines.base import Chunk, Engine, Usage
from infercost.quality.evaluate import evaluate as evaluate_quality
from infercost.report import charts
from infercost.search.results import summary
from infercost.spec import load_workload
from infercost.spec.deployment import VllmDeployment
from infercost.spec.loader import deployment_adapter, validate

from conftest import WORKLOADS

SCRIPT = "<script>alert('x')</script>"
SECTIONS = ["recommendation", "alternatives", "placements", "sensitivity", "finops", "evidence"]


class ScriptedEngine(Engine[VllmDeployment]):
    """A stand-in for vLLM (named as such: the point is an answer carrying a script tag, which a real model cannot
    be made to give on demand). Answers every prompt with its reference, except that one."""

    name = "scripted"

    async def start(self):
        pass

    async def generate(self, request):
        text = f"{SCRIPT} {request.reference}" if "capital" in (request.text() or "") else (request.reference or "ok")
        yield Chunk(text, 1)
        yield Usage(10, 1, "engine", "stop")

    async def stop(self):
        pass


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    workload = yaml.safe_load((WORKLOADS / "chat-support.yaml").read_text())
    workload["description"] = f"Support chat (Q&A) {SCRIPT}"
    workload["prompts"] = {"source": "inline", "items": [
        {"id": "q1", "prompt": f"What is the capital of France? {SCRIPT}", "reference": "Paris", "must_contain": ["Paris"]},
        {"id": "q2", "prompt": "Name a primary color.", "reference": "Red", "must_contain": ["Red"]},
        {"id": "q3", "prompt": "What is 2 + 2?", "reference": "4", "must_contain": ["4"]},
    ]}
    workload["quality"]["sample_size"] = None
    (tmp / "w.yaml").write_text(yaml.safe_dump(workload))
    study = {"name": "r", "workload": "w.yaml", "mode": "project",
             "space": {"models": ["llama-3.1-8b"], "engines": ["vllm"], "precisions": {"vllm": ["bfloat16"]},
                       "max_num_seqs": [32, 128],
                       "placements": {"hardware": ["H100-SXM", "L4"], "pricing": ["on_demand", "spot"]}},
             "constraints": {"quality": True, "budget": True},
             "baseline": {"deployment": {"engine": "vllm", "model": "llama-3.1-8b", "dtype": "bfloat16",
                                         "max_num_seqs": 32}, "hardware": "H100-SXM"},
             "capacity": {"precision": 0.2}, "sampler": "grid", "n_trials": 8}
    (tmp / "s.yaml").write_text(yaml.safe_dump(study))
    results = tmp / "results"
    w = load_workload(tmp / "w.yaml")
    dep = validate(deployment_adapter(), {"engine": "vllm", "model": "llama-3.1-8b", "dtype": "bfloat16",
                                          "kv_cache_dtype": "auto"}, source="test")
    asyncio.run(evaluate_quality(w, dep, cache_dir=results / "studies" / "r" / "quality-cache",
                                 engine_factory=ScriptedEngine))

    from infercost.cli import main

    assert main(["optimize", str(tmp / "s.yaml"), "--results-dir", str(results), "--quiet", "--json"]) == 0
    assert main(["report", str(tmp / "s.yaml"), "--results-dir", str(results)]) == 0
    out = results / "studies" / "r" / "report"
    from infercost.api import study_of
    from infercost.search.optimize import stored_study

    st = stored_study(None, None, study_of(tmp / "s.yaml"), results)
    return out, json.loads((out / "report.json").read_text()), st


def test_files_and_sections_in_order(report):
    out, data, _ = report
    for name in ("report.md", "report.html", "report.json", "focus.csv"):
        assert (out / name).is_file()
    html = (out / "report.html").read_text()
    positions = [html.index(f'<h2 id="{s}"') for s in SECTIONS]
    assert positions == sorted(positions)
    md = (out / "report.md").read_text()
    titles = ["## Recommendation", "## Alternatives", "## Placement comparison", "## Sensitivity", "## FinOps",
              "## Evidence"]
    assert [md.index(t) for t in titles] == sorted(md.index(t) for t in titles)
    assert "<svg" in html and "http://" not in html.split("<svg", 1)[0].replace("http://www.w3.org", "")


def test_numbers_match_json_and_study(report):
    out, data, study = report
    rec = data["recommendation"]
    best = summary(study)["best"][0]["outcome"]
    assert rec["monthly_cost"] == pytest.approx(best["objective"])  # the study minimised the bill
    assert rec["cost_per_1k_requests"] == pytest.approx(best["cost"]["cost_per_1k_requests"])
    assert rec["cost_per_1k_requests"] == pytest.approx(rec["monthly_cost"] / rec["monthly_requests"] * 1000)
    assert rec["kind"] == "projected" and rec["expected_error"] == pytest.approx(0.4)
    assert rec["quality_met"] is True and data["finops"]["budget"]["status"] in ("ok", "warn", "breach")
    html, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    for text in (html, md):
        assert f"${rec['cost_per_1k_requests']:,.5f} per 1k requests" in text
        assert f"${rec['monthly_cost']:,.0f} per month" in text
    assert len(data["sensitivity"]["demand"]) == 3 and data["sensitivity"]["slo"]
    assert data["placements"] and all(p["accelerator"] == rec["config"]["hardware"] for p in data["placements"])
    assert data["build_vs_buy"] and data["evidence"]["metric_definitions"]["ttft_ms"]


def test_model_and_workload_text_is_escaped(report):
    out, data, _ = report
    assert any(SCRIPT in q["answer"] for q in data["quality_examples"])  # the answer really is in the report
    html = (out / "report.html").read_text()
    assert "<script" not in html  # no script tag at all: nothing from a model or workload runs, and no JS is used
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    md = (out / "report.md").read_text()
    assert "\\<script>alert('x')\\</script>" in md  # a markdown escape: shown as text, not passed through as HTML
    assert not re.search(r"(?<!\\)<script", md)


def test_markdown_tables_end_before_the_next_line_and_text_is_not_html_escaped(report):
    out, data, _ = report
    lines = (out / "report.md").read_text().splitlines()
    tables = 0
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and not lines[i + 1].startswith("|"):
            tables += 1
            assert lines[i + 1] == "", f"line {i + 2} would render as a row of the table above: {lines[i + 1]!r}"
    assert tables >= 6
    md = "\n".join(lines)
    assert "Support chat (Q&A)" in md and "alert('x')" in md  # the workload's ' & < as written
    assert not re.search(r"&(#x?[0-9a-fA-F]+|[a-zA-Z]+);", md), re.search(r".{30}&#?\w+;.{10}", md).group()
    html = (out / "report.html").read_text()
    assert "Support chat (Q&amp;A) &lt;script&gt;" in html  # HTML stays escaped


def test_a_study_with_nothing_feasible_still_reports_why(tmp_path):
    workload = yaml.safe_load((WORKLOADS / "chat-support.yaml").read_text())
    workload["slo"] = {"tpot_ms": {"p95": 0.5}}  # no GPU decodes a token in half a millisecond
    workload["prompts"]["path"] = str(WORKLOADS / "data" / "chat_support.jsonl")
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(workload))
    study = {"name": "none", "workload": "w.yaml", "mode": "project",
             "space": {"models": ["llama-3.1-8b"], "max_num_seqs": [32],
                       "placements": {"hardware": ["H100-SXM", "L4"]}},
             "constraints": {"quality": False, "budget": False}, "sampler": "grid", "n_trials": 2}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    from infercost.cli import main

    assert main(["optimize", str(tmp_path / "s.yaml"), "--results-dir", str(tmp_path), "--quiet", "--report"]) == 1
    out = tmp_path / "studies" / "none" / "report"
    data = json.loads((out / "report.json").read_text())
    assert data["recommendation"] is None and len(data["rejected"]) == 2
    assert all("TPOT floor" in r["reason"] for r in data["rejected"])
    assert "No configuration met every constraint" in (out / "report.html").read_text()


def _scatter_points(svg: str) -> int:
    """Markers drawn on the plot: one <use> per point in the axes' scatter collections (the legend's excluded)."""
    ns = "{http://www.w3.org/2000/svg}"
    axes = [g for g in ET.fromstring(svg).iter(f"{ns}g") if g.get("id", "").startswith("axes")]
    return sum(len(c.findall(f".//{ns}use")) for a in axes for c in a.findall(f"{ns}g")
               if c.get("id", "").startswith("PathCollection"))


def test_pareto_chart_plots_configurations_whose_quality_was_not_measured():
    trials = [{"trial": i, "config": f"c{i}", "status": "feasible", "cost_per_1k": 0.01 * (i + 1),
               "ttft_p95_ms": 300.0 - 100 * i, "quality": q} for i, q in enumerate([None, None, 0.9])]
    svg = charts.pareto(trials, [])
    assert _scatter_points(svg) == 3 and "quality not measured" in svg and "quality score" in svg
    svg = charts.pareto(trials[:2], [])  # no quality measured anywhere: still a chart of cost against latency
    assert _scatter_points(svg) == 2 and "quality not measured" in svg and "quality score" not in svg



def _rebuilt(report, change):
    """The recommendation again on an in-memory copy of the fixture's completed trials, each outcome passed through
    `change(trial number, outcome)` first: real report code on figures a projection would not produce."""
    import optuna

    from infercost.api import study_of
    from infercost.cost.catalog import load_catalog
    from infercost.search.recommend import recommend
    from infercost.search.evaluate import Evaluator, TrialOutcome
    from infercost.store import RunStore

    out, _, study = report
    results, tmp = out.parents[2], out.parents[3]
    spec = study_of(tmp / "s.yaml")
    workload = load_workload(spec.resolve(spec.workload))
    catalog = load_catalog()
    copy = optuna.create_study(study_name="r")
    for t in study.get_trials():
        if t.state == optuna.trial.TrialState.COMPLETE:
            o = change(t.number, TrialOutcome.model_validate(t.user_attrs["outcome"]))
            copy.add_trial(optuna.trial.create_trial(
                value=o.objective, params=t.params, distributions=t.distributions,
                user_attrs={**t.user_attrs, "outcome": json.loads(o.model_dump_json())}))
    return recommend(copy, spec, workload, catalog, Evaluator(spec, workload, RunStore(results / "studies" / "r"),
                                                              catalog)).to_json()


def test_sensitivity_costs_are_the_bill_of_the_main_figures(report):
    """A tighter or looser SLO changes the capacity; its cost is the same bill on the same offer. At this demand
    (about 3 req/s at the busiest hour) every capacity here still needs one replica at 70%, so the bill, and the
    cost per 1k requests served, are the recommendation's own."""
    _, data, _ = report
    rec = data["recommendation"]
    peak = max(rec["replicas_by_hour"]) and data["placements"][0]["peak_rps"]
    assert data["sensitivity"]["slo"]
    for s in data["sensitivity"]["slo"]:
        assert s["capacity_rps"] * 0.7 > peak  # one replica carries the peak
        assert s["cost_per_1k_requests"] == pytest.approx(rec["cost_per_1k_requests"])


def test_report_pareto_front_is_the_search_s_and_a_missing_ttft_knocks_nothing_off(report):
    from infercost.search.study import outcomes, pareto_front

    out, data, study = report

    def at_capacity(_, o):  # on the bill every trial here is one replica's month: at capacity they spread out
        return o.model_copy(update={"objective": o.cost.cost_per_1k_at_capacity}) if o.objective is not None else o

    feasible = sorted([(t, at_capacity(t, o)) for t, o in outcomes(study) if o.status == "feasible"],
                      key=lambda x: x[1].objective)
    rep = _rebuilt(report, at_capacity)
    before = [p["trial"] for p in rep["pareto"]]
    assert before == [t.number for t, _ in pareto_front(feasible)] and len(before) > 1
    best = rep["recommendation"]["trial"]
    rep = _rebuilt(report, lambda n, o: at_capacity(n, o).model_copy(update={"ttft_p95_ms": None}) if n == best
                   else at_capacity(n, o))
    assert set(before) <= {p["trial"] for p in rep["pareto"]}  # no latency figure: it dominates nobody on latency


def test_a_too_close_race_is_declined_and_a_clear_lead_is_called(report):
    _, data, study = report
    best = data["recommendation"]["trial"]
    feasible = [(t.number, t.user_attrs["outcome"]["objective"]) for t in study.get_trials()
                if t.user_attrs.get("status") == "feasible"]
    cost = dict(feasible)[best]
    second = next(n for n, _ in feasible if n != best)

    def race(share):
        def change(n, o):  # the winner and one other in the race, the rest far behind
            if o.status != "feasible" or o.objective is None:
                return o
            objective = cost * share if n == second else o.objective if n == best else cost * 3
            return o.model_copy(update={"objective": objective, "objective_low": objective * 0.9,
                                        "objective_high": objective * 1.1})
        return _rebuilt(report, change)

    close = race(1.05)  # 5% apart with +-10% intervals: they overlap
    rec = close["recommendation"]
    assert rec["trial"] == best and rec["versus_runner_up"]["verdict"] == "too close to call"
    assert close["verdict"].startswith("Too close to call")
    assert any("too close to call" in a["why_not"] for a in close["alternatives"] if a["trial"] == second)
    clear = race(1.5)  # 50% apart: the winner's highest estimate is below the runner-up's lowest
    assert clear["recommendation"]["versus_runner_up"]["verdict"] == "beyond the intervals"
    assert clear["verdict"].startswith("Cheaper than the runner-up beyond both intervals")
