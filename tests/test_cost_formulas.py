"""Cost and fleet formulas against answers worked out by hand."""

import math

import pytest

from infercost.cost.formulas import (
    api_cost_per_request,
    autoscaled_replicas,
    break_even_requests,
    cost_per_1k_requests,
    cost_per_1m_tokens,
    hourly_rps,
    monthly_cost,
    replicas_for_peak,
)
from infercost.cost.onprem import OnPremServer
from infercost.cost.pricing import FleetPolicy, Throughput, api_cost_row, cost_rows
from infercost.cost.catalog import Offer, TokenPrice
from infercost.spec.workload import Demand


def test_cost_per_1k_requests():
    # $3.60/h serving 2 req/s: 7,200 requests per hour -> $0.0005 per request -> $0.50 per 1k
    assert cost_per_1k_requests(3.60, 2.0) == pytest.approx(0.50)
    # at 80% target utilisation the same hour serves 5,760 requests -> $0.625 per 1k
    assert cost_per_1k_requests(3.60, 2.0, 0.8) == pytest.approx(0.625)
    with pytest.raises(ValueError):
        cost_per_1k_requests(1.0, 0.0)
    with pytest.raises(ValueError):
        cost_per_1k_requests(1.0, 1.0, 1.5)


def test_cost_per_1m_tokens():
    # $2/h at 500 output tok/s: 1.8M tokens per hour -> $1.111 per 1M
    assert cost_per_1m_tokens(2.0, 500) == pytest.approx(2.0 / 1.8)


def test_replicas_for_peak():
    assert replicas_for_peak(10, 3) == 4  # 10 / 3 = 3.33 -> 4
    assert replicas_for_peak(9, 3) == 3  # exactly 3, not 4 from float noise
    assert replicas_for_peak(9, 3, 0.75) == 4  # 9 / 2.25 = 4
    assert replicas_for_peak(0.1, 3, min_replicas=2) == 2
    assert replicas_for_peak(0.0, 3, min_replicas=0) == 0


def test_hourly_rates_from_a_profile():
    profile = [1] * 12 + [3] * 12  # sum 48
    rates = hourly_rps(profile, requests_per_day=172_800)  # 2 req/s on average
    assert rates[0] == pytest.approx(172_800 / 48 / 3600)  # 1.0 req/s
    assert rates[23] == pytest.approx(3.0)
    assert sum(r * 3600 for r in rates) == pytest.approx(172_800)
    assert hourly_rps(profile, peak_rps=6)[:2] == [2.0, 2.0]


def test_autoscaled_replica_hours():
    rates = [1.0] * 12 + [3.0] * 12
    # capacity 1.5 req/s: 1 replica at night (1/1.5 -> 1), 2 by day (3/1.5 = 2) -> 12*1 + 12*2 = 36 replica-hours
    assert sum(autoscaled_replicas(rates, 1.5)) == 36
    # min 2 replicas: 24*2 = 48
    assert sum(autoscaled_replicas(rates, 1.5, min_replicas=2)) == 48
    # scale in steps of 4: night 1 -> 4, day 2 -> 4
    assert sum(autoscaled_replicas(rates, 1.5, step=4)) == 96
    # $2/h x 36 replica-hours a day x 730/24 days = $2,190 a month
    assert monthly_cost(2.0, 36) == pytest.approx(2190.0)


def test_api_cost_per_request():
    # 1,000 input at $0.15/1M + 200 output at $0.60/1M = 0.00015 + 0.00012
    assert api_cost_per_request(1000, 200, 0.15, 0.60) == pytest.approx(0.00027)
    # half the input cached at $0.075: 500 x 0.15 + 500 x 0.075 = 112.5e-6, + 120e-6
    assert api_cost_per_request(1000, 200, 0.15, 0.60, 0.075, 0.5) == pytest.approx(0.0002325)


def test_break_even():
    assert break_even_requests(0.01, 100.0) == pytest.approx(10_000)
    assert break_even_requests(0.01, 100.0, 0.004) == pytest.approx(100 / 0.006)
    assert break_even_requests(0.01, 100.0, 0.02) is None


def test_onprem_hourly_price():
    server = OnPremServer(name="4xl40s", accelerator="L40S", accelerator_count=4, capex=87_600,
                          amortisation_years=5, power_kw=2.0, price_per_kwh=0.10, pue=1.5, ops_overhead_pct=10)
    b = server.hourly_breakdown()
    assert b["capex_hourly"] == pytest.approx(87_600 / (5 * 8760))  # $2.00/h
    assert b["power_hourly"] == pytest.approx(0.30)  # 2 kW x 1.5 x $0.10
    assert b["ops_hourly"] == pytest.approx(0.23)  # 10% of 2.30
    assert b["total_hourly"] == pytest.approx(2.53)
    offer = server.offer()
    assert offer.provider == "on-prem" and offer.on_demand_hourly == pytest.approx(2.53)
    assert "capex" in offer.notes and offer.hourly("reserved_3y") == pytest.approx(2.53)


def _offer(**kw):
    base = dict(provider="aws", region="us-east-1", sku="g6.xlarge", accelerator="L4", accelerator_count=1,
                on_demand_hourly=0.80, spot_hourly=0.32, source="https://example.com/pricing", as_of="2026-09-01")
    base.update(kw)
    return Offer(**base)


def test_cost_rows_for_each_pricing_model_and_month():
    tp = Throughput(kind="measured", capacity_rps=2.0, mean_input_tokens=300, mean_output_tokens=100,
                    workload="w", deployment="d", basis="test", tags={"team": "a"})
    demand = Demand(peak_rps=5)  # flat at the peak
    rows = cost_rows(tp, [_offer()], demand, FleetPolicy(target_utilisation=0.5, spot_hours_lost=0.1, scale_up_s=0))
    assert [r.pricing for r in rows] == ["on_demand", "spot"]  # no reserved price: no row
    od, spot = rows
    # $0.80/h / (2 req/s x 0.5 x 3600) x 1000 = $0.2222 per 1k at capacity; 5 replicas fit the flat 5 req/s exactly,
    # so the bill over the requests served is the same
    assert od.cost_per_1k_at_capacity == pytest.approx(0.80 / 3600 * 1000)
    assert od.cost_per_1k_requests == pytest.approx(0.80 / 3600 * 1000)
    # spot: 1 replica on demand ($0.80) and 4 at 0.9 x $0.32 + 0.1 x $0.80 = $0.368: $2.272 an hour for 5 req/s
    assert spot.cost_per_1k_requests == pytest.approx(2.272 / (5 * 3600) * 1000)
    # 100 output tokens per request: 200 tok/s per replica, at 50% -> 100 tok/s -> 360k tokens/h
    assert od.cost_per_1m_output_tokens == pytest.approx(0.80 / 0.36)
    assert od.cost_per_1m_total_tokens == pytest.approx(0.80 / 1.44)
    # peak 5 req/s at 1 req/s usable per replica -> 5 replicas x 730 h x $0.80 = $2,920
    assert od.replicas_at_peak == 5 and od.monthly_cost == pytest.approx(2920.0)
    assert od.tags == {"team": "a"} and od.price_as_of == "2026-09-01"


def test_api_row_prices_measured_tokens():
    price = TokenPrice(provider="openai", model="m", input_per_1m=0.15, cached_input_per_1m=0.075, output_per_1m=0.6,
                       source="https://example.com", as_of="2026-08-18")
    row = api_cost_row(price, "w", {"team": "a"}, 1000, 200, Demand(requests_per_day=24_000))
    assert row.cost_per_1k_requests == pytest.approx(0.27)
    assert row.monthly_requests == pytest.approx(24_000 * 730 / 24)
    assert row.monthly_cost == pytest.approx(0.00027 * 730_000)
    assert math.isclose(row.cost_per_1m_output_tokens, 0.00027 / 200 * 1e6)
