"""A study on a low-demand workload chooses on the bill, and its report gives one answer.

The chat-support workload's demand (150,000 requests a day, about 3 req/s at its busiest hour) needs one replica of
any GPU here. At capacity, an H100 at $2.00/h (it serves several times what an L4 does) is cheaper per 1k requests
than an L4 at $0.80/h; at this demand both run one replica, so the L4's month is the cheaper bill. Every figure is
projected (no GPU is needed) from the shipped performance model, on a two-row catalog written by the test."""

import json
from pathlib import Path

import pytest
import yaml

import infercost
from infercost.cost.fleet import DAYS_PER_MONTH
from infercost.search.recommendation import BuyOption

WORKLOADS = Path(__file__).resolve().parent.parent / "workloads"
HEADER = ("provider,region,region_name,sku,accelerator,accelerator_count,accelerator_memory_gb,vcpus,ram_gb,"
          "on_demand_hourly,spot_hourly,reserved_1y_hourly,reserved_3y_hourly,currency,source,as_of,notes\n")


def study(tmp_path: Path, objective: str) -> Path:
    catalog = tmp_path / "offers.csv"
    catalog.write_text(HEADER + "testcloud,r1,,l4.box,L4,1,24,8,32,0.80,,,,USD,test row,2026-11-01,\n"
                                "testcloud,r1,,h100.box,H100-SXM,1,80,26,200,2.00,,,,USD,test row,2026-11-01,\n")
    path = tmp_path / f"{objective}.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"low-demand-{objective.replace('_', '-')}", "workload": str(WORKLOADS / "chat-support.yaml"),
        "mode": "project", "objective": objective,
        "space": {"models": ["llama-3.1-8b"], "precisions": {"vllm": ["bfloat16"]}, "max_num_seqs": [256],
                  "placements": {"hardware": ["H100-SXM", "L4"], "providers": ["testcloud"],
                                 "pricing": ["on_demand"]}},
        "constraints": {"quality": False, "budget": False}, "sampler": "grid", "n_trials": 2}))
    return path


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bill")
    out = {}
    for objective in ("cost_per_1k_at_capacity", "bill"):
        found = infercost.optimize(study(tmp, objective), results_dir=tmp / "results",
                                   catalog=[tmp / "offers.csv"])
        rec = infercost.recommend(found)
        out[objective] = (found, rec, infercost.report(rec, tmp / f"report-{objective}"))
    return out


def test_the_bill_and_the_cost_at_capacity_choose_different_winners(both):
    _, at_capacity, _ = both["cost_per_1k_at_capacity"]
    _, bill, _ = both["bill"]
    assert at_capacity.winner.config["hardware"] == "H100-SXM"
    assert bill.winner.config["hardware"] == "L4"
    # both placements run one replica around the clock at this demand: the bill is one replica's month
    assert bill.winner.replicas_by_hour == [1] * 24
    assert bill.winner.monthly_cost == pytest.approx(0.80 * 730)
    [h100] = bill.alternatives
    assert h100.monthly_cost == pytest.approx(2.00 * 730)
    # ... while per 1k at capacity the H100 is the cheaper, as the other study found
    assert h100.cost_per_1k_at_capacity < bill.winner.cost_per_1k_at_capacity


def test_the_headline_is_the_bill_over_the_requests_served(both):
    _, rec, paths = both["bill"]
    w = rec.winner
    requests = 150_000 * DAYS_PER_MONTH
    assert w.monthly_requests == pytest.approx(requests)
    assert w.cost_per_1k_requests == pytest.approx(w.monthly_cost / requests * 1000)
    assert w.cost_per_1k_basis == "effective"
    data = json.loads(paths["json"].read_text())
    assert data["recommendation"]["cost_per_1k_requests"] == pytest.approx(w.monthly_cost / requests * 1000)
    for text in (paths["md"].read_text(), paths["html"].read_text()):
        assert f"${w.cost_per_1k_requests:,.5f} per 1k requests served" in text
        assert f"${w.monthly_cost:,.0f} per month" in text


def test_every_part_of_the_report_names_the_bills_winner(both):
    _, rec, paths = both["bill"]
    w = rec.winner
    assert rec.contradictions() == []
    b = rec.build_or_buy
    assert b.choice == "build" and b.best_self_hosted.label == w.label and w.label in b.verdict
    assert "H100" not in b.verdict
    assert [a.label for a in rec.alternatives] == [w.label.replace("L4", "H100-SXM")]
    assert rec.focus_rows[0].deployment == w.label and rec.focus_rows[0].monthly_cost == w.monthly_cost
    assert rec.finops.showback[0]["monthly_cost"] == pytest.approx(w.monthly_cost)
    md = paths["md"].read_text()
    recommendation, build = md.split("## Recommendation")[1].split("## Build or buy")
    assert w.label in recommendation.splitlines()[1] and f"**Build.** Build: {w.label}" in build


def test_a_report_that_names_two_winners_is_refused(both):
    _, rec, _ = both["bill"]
    h100 = rec.alternatives[0]
    wrong = rec.model_copy(deep=True)
    wrong.build_or_buy.best_self_hosted = BuyOption(label=h100.label, kind="projected", status="feasible")
    assert wrong.contradictions() == [f"build or buy names {h100.label}, the recommendation is {rec.winner.label}"]


def test_without_a_demand_the_figures_are_at_capacity_and_say_so(tmp_path):
    workload = yaml.safe_load((WORKLOADS / "chat-support.yaml").read_text())
    workload.pop("demand"), workload.pop("budget")
    workload["prompts"]["path"] = str(WORKLOADS / "data" / "chat_support.jsonl")
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(workload))
    path = study(tmp_path, "bill")
    spec = yaml.safe_load(path.read_text())
    spec["workload"] = str(tmp_path / "w.yaml")
    path.write_text(yaml.safe_dump(spec))
    found = infercost.optimize(path, results_dir=tmp_path / "results", catalog=[tmp_path / "offers.csv"])
    rec = infercost.recommend(found)
    assert rec.objective == "cost_per_1k_at_capacity" and "no bill can be computed" in rec.no_bill
    assert rec.winner.monthly_cost is None and rec.winner.cost_per_1k_basis == "at capacity"
    assert rec.winner.config["hardware"] == "H100-SXM"  # the cheaper at capacity, as above
    md = infercost.report(rec, tmp_path / "report")["md"].read_text()
    assert f"**${rec.winner.cost_per_1k_requests:,.5f} per 1k requests at capacity**," in md
    assert "no bill: the workload gives no demand (requests_per_day, peak_rps or an hourly profile)" in md
