"""FinOps views: budget thresholds, showback by tag, value and ROI, and the FOCUS export (columns, types, round
trip through pandas)."""

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from infercost.cost.catalog import Offer, TokenPrice
from infercost.cost.finops import budget_status, planned_rows, showback, value_figures
from infercost.cost.focus import COLUMNS, focus_frame, next_month, read_focus, write_focus
from infercost.cost.pricing import FleetPolicy, Throughput, api_cost_row, cost_rows
from infercost.spec.workload import Budget, Demand, Value

OFFER = Offer(provider="aws", region="us-east-1", region_name="US East (N. Virginia)", sku="g6.xlarge",
              accelerator="L4", accelerator_count=1, on_demand_hourly=1.0, spot_hourly=0.4, reserved_1y_hourly=0.6,
              source="https://aws.amazon.com/ec2/pricing/", as_of="2026-09-01")
CHEAP = OFFER.model_copy(update={"sku": "g6.cheap", "on_demand_hourly": 0.5, "spot_hourly": None,
                                 "reserved_1y_hourly": None})


def rows_for(workload, tags, rps=1.0, peak=2.0, offers=(OFFER, CHEAP)):
    tp = Throughput(kind="measured", capacity_rps=rps, mean_input_tokens=400, mean_output_tokens=100,
                    workload=workload, deployment=f"{workload}-dep", basis="test", tags=tags)
    return cost_rows(tp, list(offers), Demand(peak_rps=peak, requests_per_day=86_400),
                     FleetPolicy(target_utilisation=1.0, scale_up_s=0))  # the arithmetic below at full capacity


@pytest.mark.parametrize("cost, status", [(500, "ok"), (799.99, "ok"), (800, "warn"), (950, "warn"),
                                          (1000, "breach"), (1500, "breach")])
def test_budget_thresholds_under_near_over(cost, status):
    b = budget_status(cost, Budget(monthly=1000, warn_at=0.8, breach_at=1.0))
    assert b.status == status
    assert b.used == pytest.approx(cost / 1000) and b.headroom == pytest.approx(1000 - cost)
    assert f"{cost / 1000:.0%}" in b.message


def test_showback_sums_each_workloads_plan_by_tag():
    rows = (rows_for("chat", {"team": "support", "product": "help"})
            + rows_for("rag", {"team": "search", "product": "help"}, peak=4.0)
            + rows_for("batch", {"product": "reports"}))  # no team tag
    planned = planned_rows(rows)
    assert sorted(r.workload for r in planned) == ["batch", "chat", "rag"]
    assert all(r.sku == "g6.cheap" for r in planned)  # the cheapest on-demand row of each workload
    by_team = showback(rows, "team").set_index("team")
    # chat: 2 replicas x $0.5 x 730 = 730; rag: 4 x 0.5 x 730 = 1460; batch (untagged): 730
    assert by_team.loc["support", "monthly_cost"] == pytest.approx(730)
    assert by_team.loc["search", "monthly_cost"] == pytest.approx(1460)
    assert by_team.loc["(untagged)", "monthly_cost"] == pytest.approx(730)
    assert by_team["share"].sum() == pytest.approx(1.0)
    by_product = showback(rows, ["product"]).set_index("product")
    assert by_product.loc["help", "monthly_cost"] == pytest.approx(2190) and by_product.loc["help", "workloads"] == 2


def test_value_roi_and_break_even():
    row = rows_for("chat", {})[0]  # $1/h, 1 req/s per replica, 2 replicas, 2.628M requests a month
    v = value_figures(row, Value(per_request=0.01))
    assert v.monthly_value == pytest.approx(0.01 * 86_400 * 730 / 24)
    assert v.monthly_cost == pytest.approx(1460)
    assert v.roi == pytest.approx((v.monthly_value - 1460) / 1460)
    assert v.break_even_requests_per_month == pytest.approx(730 / 0.01)  # one replica's month / value
    # worth less than it costs at full utilisation ($1/h / 3600 req/h = $0.000278 per request)
    assert value_figures(row, Value(per_request=0.0001)).break_even_requests_per_month is None
    price = TokenPrice(provider="x", model="m", input_per_1m=1.0, output_per_1m=2.0, source="https://x.example",
                       as_of="2026-01-01")
    api = api_cost_row(price, "chat", {}, 400, 100, Demand(requests_per_day=1000))  # $0.0006 per request
    assert value_figures(api, Value(per_request=0.001)).break_even_requests_per_month == 0.0
    assert value_figures(api, Value(per_request=0.0005)).break_even_requests_per_month is None


def test_focus_export_columns_types_and_round_trip(tmp_path):
    price = TokenPrice(provider="openai", model="gpt-x", input_per_1m=1.0, cached_input_per_1m=0.5,
                       output_per_1m=4.0, source="https://openai.example/pricing", as_of="2026-08-18")
    rows = rows_for("chat", {"team": "support"}) + [
        api_cost_row(price, "chat", {"team": "support"}, 400, 100, Demand(requests_per_day=86_400), 0.5)]
    period = (datetime(2026, 12, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc))
    frame = write_focus(rows, tmp_path / "focus.csv", period)
    assert list(frame.columns) == COLUMNS
    for col in ("BilledCost", "EffectiveCost", "ListCost", "ListUnitPrice", "PricingCategory", "PricingUnit",
                "PricingQuantity", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ProviderName",
                "RegionId", "RegionName", "ResourceType", "SkuId", "ServiceCategory", "ServiceName", "Tags"):
        assert col in frame.columns
    back = read_focus(tmp_path / "focus.csv")
    assert len(back) == len(frame) == 3 + 1 + 2  # a row per offer x priced model (3 + 1), 2 API rows (in/out)
    for col in ("BilledCost", "EffectiveCost", "ListCost", "PricingQuantity"):
        assert pd.api.types.is_float_dtype(back[col]), col
    assert str(back["ChargePeriodStart"].dt.tz) == "UTC" and back["ChargePeriodStart"].iloc[0].day == 1
    assert set(back["ServiceCategory"]) == {"AI and Machine Learning"}
    assert set(back["PricingCategory"]) == {"Standard", "Dynamic", "Committed"}
    assert all(json.loads(t)["team"] == "support" for t in back["Tags"])
    vm = back[back["ResourceType"] == "Virtual Machine"]
    # 31 days of December: 2 replicas x 744 h; the on-demand row bills $1/h
    od = vm[(vm["SkuId"] == "g6.xlarge") & (vm["PricingCategory"] == "Standard")].iloc[0]
    assert od["PricingQuantity"] == pytest.approx(2 * 744) and od["BilledCost"] == pytest.approx(1488)
    spot = vm[vm["PricingCategory"] == "Dynamic"].iloc[0]
    # a spot fleet of 2: 1 replica on the on-demand floor ($1/h) and 1 spot, its hours 0.2 x 24 / 730 lost to
    # interruption on AWS and served on demand: 0.4 x (1 - 0.006575) + 1 x 0.006575 = $0.40395 an hour
    lost = 0.2 * 24 / 730
    assert spot["ListCost"] == pytest.approx(1488)
    assert spot["BilledCost"] == pytest.approx(744 * (1.0 + 0.4 * (1 - lost) + lost))
    api = back[back["ResourceType"] == "Model API"].set_index("SkuMeter")
    millions_in = 86_400 * 31 * 400 / 1e6
    assert api.loc["Input Tokens", "PricingQuantity"] == pytest.approx(millions_in)
    assert api.loc["Input Tokens", "ListCost"] == pytest.approx(millions_in * 1.0)
    assert api.loc["Input Tokens", "BilledCost"] == pytest.approx(millions_in * 0.75)  # half cached at $0.5
    assert api.loc["Output Tokens", "BilledCost"] == pytest.approx(86_400 * 31 * 100 / 1e6 * 4.0)
    assert (back["BilledCost"] <= back["ListCost"] + 1e-9).all()


def test_next_month_rolls_over_the_year():
    start, end = next_month(datetime(2026, 12, 15).date())
    assert (start.year, start.month, end.year, end.month) == (2027, 1, 2027, 2)
    assert focus_frame([]).empty
