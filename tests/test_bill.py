"""The bill at the workload's demand, against arithmetic written out in each test: hourly profiles, minimum replicas,
scale steps, start-up, spot with interruption and an on-demand floor, and an API billed on the same demand. The
headline per 1k requests is the bill over the requests served."""

import pytest

from infercost.cost.catalog import Offer, TokenPrice
from infercost.cost.fleet import DAYS_PER_MONTH, FleetPolicy, demand_hours, fleet_bill
from infercost.cost.pricing import Throughput, api_cost_row, cost_rows
from infercost.spec.workload import Demand

DAYS = 730 / 24  # 30.4167 days in a month of 730 hours
FLAT = Demand(requests_per_day=172_800)  # 2 req/s every hour
DIURNAL = Demand(requests_per_day=172_800, hourly_profile=[1] * 12 + [3] * 12)  # 1 req/s, then 3 req/s
REQUESTS = 172_800 * DAYS  # 5,256,000 a month


def offer(**kw) -> Offer:
    base = dict(provider="aws", region="us-east-1", sku="x", accelerator="L4", accelerator_count=1,
                on_demand_hourly=1.00, spot_hourly=0.40, source="https://example.com/pricing", as_of="2026-09-01")
    return Offer(**{**base, **kw})


def throughput(capacity: float, startup_s: float | None = None) -> Throughput:
    return Throughput(kind="measured", capacity_rps=capacity, mean_input_tokens=1000, mean_output_tokens=200,
                      workload="w", deployment="d", basis="test", startup_s=startup_s)


def row(demand: Demand, policy: FleetPolicy, pricing: str = "on_demand", capacity: float = 1.0,
        startup_s: float | None = 0.0):
    (r,) = cost_rows(throughput(capacity, startup_s), [offer()], demand, policy, (pricing,))
    return r


def test_days_per_month_follow_the_730_hour_month():
    assert DAYS_PER_MONTH == pytest.approx(DAYS)


def test_a_flat_profile_fitted_exactly_costs_what_capacity_says():
    # 2 req/s, 1 req/s per replica at 50% utilisation = 0.5 req/s each: 4 replicas x 24 h x $1 = $96 a day,
    # $2,920 a month for 5,256,000 requests = $0.5556 per 1k, which is $1 / (0.5 req/s x 3600) x 1000 at capacity
    r = row(FLAT, FleetPolicy(target_utilisation=0.5))
    assert r.replicas_at_peak == 4 and r.replica_hours_per_day == 96
    assert r.monthly_cost == pytest.approx(96 * DAYS)
    assert r.monthly_requests == pytest.approx(REQUESTS)
    assert r.cost_per_1k_basis == "effective"
    assert r.cost_per_1k_requests == pytest.approx(2920 / REQUESTS * 1000)
    assert r.cost_per_1k_at_capacity == pytest.approx(1 / (0.5 * 3600) * 1000)
    assert r.cost_per_1k_requests == pytest.approx(r.cost_per_1k_at_capacity)


def test_a_low_demand_pays_for_the_idle_replica():
    # 0.05 req/s on a replica that sustains 10: still one replica all day, $24 a day, $730 a month, for
    # 4,320 x 30.4167 = 131,400 requests: $5.556 per 1k, 200 times the $0.0278 at capacity (10 x 3600 x 1.0)
    r = row(Demand(requests_per_day=4_320), FleetPolicy(target_utilisation=1.0), capacity=10.0)
    assert r.monthly_cost == pytest.approx(730)
    assert r.cost_per_1k_requests == pytest.approx(730 / (4_320 * DAYS) * 1000)  # $5.556
    assert r.cost_per_1k_at_capacity == pytest.approx(1 / 36_000 * 1000)  # $0.0278
    assert r.cost_per_1k_requests / r.cost_per_1k_at_capacity == pytest.approx(200)


def test_a_diurnal_profile_is_followed_hour_by_hour():
    # 12 hours at 1 req/s (1 replica) and 12 at 3 req/s (3 replicas) at 100%: 48 replica-hours, $48 a day, $1,460 a
    # month for the same 5,256,000 requests: $0.2778 per 1k
    r = row(DIURNAL, FleetPolicy(target_utilisation=1.0))
    assert r.replicas_by_hour == [1] * 12 + [3] * 12
    assert r.monthly_cost == pytest.approx(48 * DAYS)  # $1,460
    assert r.cost_per_1k_requests == pytest.approx(1460 / REQUESTS * 1000)
    # without autoscaling the peak's 3 replicas run all day: 72 replica-hours, $2,190
    assert row(DIURNAL, FleetPolicy(target_utilisation=1.0, autoscale=False)).monthly_cost == pytest.approx(72 * DAYS)


def test_minimum_replicas_scale_step_and_start_up():
    u1 = dict(target_utilisation=1.0)
    # start-up of 600 s: the 2 replicas added at hour 12 each run 10 minutes before they serve, 1/3 h a day on top
    # of 48: $48.333 a day, $1,470.14 a month
    assert row(DIURNAL, FleetPolicy(**u1), startup_s=600).monthly_cost == pytest.approx((48 + 2 * 600 / 3600) * DAYS)
    # minimum 2: the quiet hours run 2, the busy 3 (12 x 2 + 12 x 3 = 60 replica-hours) and 1 replica is added a day
    r = row(DIURNAL, FleetPolicy(min_replicas=2, **u1), startup_s=600)
    assert r.replicas_by_hour == [2] * 12 + [3] * 12
    assert r.monthly_cost == pytest.approx((60 + 600 / 3600) * DAYS)  # $1,830.07
    assert r.startup_replica_hours_per_day == pytest.approx(1 / 6)
    # scale step 2: the busy hours need 3 and get 4, the quiet ones need 1 and get 2: 72 replica-hours, 2 added
    r = row(DIURNAL, FleetPolicy(scale_step=2, **u1), startup_s=600)
    assert r.replicas_by_hour == [2] * 12 + [4] * 12
    assert r.monthly_cost == pytest.approx((72 + 2 * 600 / 3600) * DAYS)
    # the study's scale_up_s overrides the measured start-up
    overridden = row(DIURNAL, FleetPolicy(scale_up_s=1800, **u1), startup_s=600)
    assert overridden.startup_s == 1800 and overridden.monthly_cost == pytest.approx((48 + 2 * 0.5) * DAYS)
    # the day wraps: hour 0 follows hour 23, so a profile that rises at midnight still pays its start-up
    wrapped = Demand(requests_per_day=172_800, hourly_profile=[3] * 12 + [1] * 12)
    assert row(wrapped, FleetPolicy(**u1), startup_s=600).monthly_cost == pytest.approx((48 + 2 * 600 / 3600) * DAYS)


def test_projected_start_up_reads_the_weights_at_the_stated_rate():
    policy = FleetPolicy(load_gb_per_s=2.0, startup_overhead_s=30)
    assert policy.startup_s(None, 16.0) == (pytest.approx(38.0), "projected: 16 GB of weights at 2 GB/s + 30 s")
    assert policy.startup_s(95.0, 16.0) == (95.0, "measured start-up")


def test_spot_keeps_an_on_demand_floor_and_prices_interruption():
    # 4 replicas (2 req/s at 0.5 each): 1 on demand at $1.00 and 3 spot. 10% of spot hours are lost and served on
    # demand: a spot replica-hour costs 0.9 x $0.40 + 0.1 x $1.00 = $0.46. A day: 24 x (1.00 + 3 x 0.46) = $57.12,
    # $1,737.40 a month: $0.3306 per 1k, against $2,920 ($0.5556) on demand
    policy = FleetPolicy(target_utilisation=0.5, on_demand_floor=1, spot_hours_lost=0.10)
    spot = row(FLAT, policy, "spot")
    assert spot.effective_hourly_price == pytest.approx(0.46)
    assert spot.monthly_cost == pytest.approx(24 * (1.00 + 3 * 0.46) * DAYS)
    assert spot.cost_per_1k_requests == pytest.approx(24 * 2.38 * DAYS / REQUESTS * 1000)
    assert "1 replica(s) kept on demand" in spot.spot_assumption and "10%" in spot.spot_assumption
    # at capacity (the marginal cost at scale) a spot replica-hour is the expected $0.46
    assert spot.cost_per_1k_at_capacity == pytest.approx(0.46 / (0.5 * 3600) * 1000)
    # one replica of demand: the floor is the whole fleet, so spot costs what on demand does
    small = Demand(requests_per_day=43_200)  # 0.5 req/s: one replica
    assert row(small, policy, "spot").monthly_cost == pytest.approx(row(small, policy).monthly_cost)
    # no floor: all 4 replicas at $0.46
    assert row(FLAT, policy.model_copy(update={"on_demand_floor": 0}), "spot").monthly_cost == \
        pytest.approx(24 * 4 * 0.46 * DAYS)


def test_spot_risk_comes_from_the_providers_table_unless_the_study_sets_it():
    from infercost.cost.fleet import SPOT_RISK, spot_risk

    assert spot_risk("aws", FleetPolicy()) == SPOT_RISK["aws"]
    assert spot_risk("nobody", FleetPolicy()).hours_lost == SPOT_RISK["default"].hours_lost
    assert spot_risk("aws", FleetPolicy(spot_hours_lost=0.25)).hours_lost == 0.25
    for risk in SPOT_RISK.values():
        assert 0 < risk.hours_lost < 1 and risk.source


def test_an_api_is_billed_on_the_same_demand():
    # 1,000 input tokens at $0.15/1M and 200 output at $0.60/1M: $0.00027 a request. The diurnal demand serves
    # 5,256,000 requests a month, the fleet's figure: $1,419.12, $0.27 per 1k, idle hours free
    price = TokenPrice(provider="openai", model="m", input_per_1m=0.15, output_per_1m=0.60,
                       source="https://example.com", as_of="2026-08-18")
    api = api_cost_row(price, "w", {}, 1000, 200, DIURNAL)
    fleet = row(DIURNAL, FleetPolicy(target_utilisation=1.0))
    assert api.monthly_requests == pytest.approx(fleet.monthly_requests) == pytest.approx(REQUESTS)
    assert api.monthly_cost == pytest.approx(0.00027 * REQUESTS)
    assert api.cost_per_1k_requests == pytest.approx(0.27) and api.cost_per_1k_basis == "effective"


def test_demand_shapes():
    # only a peak: flat at the peak; a peak and a day without a profile: sized for the peak, billed for the day
    peak = demand_hours(Demand(peak_rps=5))
    assert peak.sizing_rps == [5] * 24 and peak.monthly_requests == pytest.approx(5 * 86_400 * DAYS)
    both = demand_hours(Demand(peak_rps=5, requests_per_day=86_400))
    assert both.sizing_rps == [5] * 24 and both.monthly_requests == pytest.approx(86_400 * DAYS)
    assert demand_hours(Demand()) is None


def test_no_demand_gives_the_cost_at_capacity_labelled():
    r = row(Demand(), FleetPolicy(target_utilisation=0.5))
    assert r.monthly_cost is None and r.cost_per_1k_basis == "at capacity"
    assert r.cost_per_1k_requests == pytest.approx(1 / 1800 * 1000)


def test_the_capacity_interval_gives_the_bill_interval():
    # capacity 1 req/s within [0.5, 2]: at 0.5 the flat 2 req/s needs 8 replicas at 50%, at 2 it needs 2
    tp = throughput(1.0).model_copy(update={"capacity_low_rps": 0.5, "capacity_high_rps": 2.0, "startup_s": 0.0})
    (r,) = cost_rows(tp, [offer()], FLAT, FleetPolicy(target_utilisation=0.5), ("on_demand",))
    assert r.monthly_cost_low == pytest.approx(2 * 24 * DAYS) and r.monthly_cost_high == pytest.approx(8 * 24 * DAYS)
    assert r.cost_per_1k_requests_low == pytest.approx(r.monthly_cost_low / REQUESTS * 1000)


def test_fleet_bill_and_cost_rows_agree():
    hours = demand_hours(DIURNAL)
    policy = FleetPolicy(min_replicas=2)
    bill = fleet_bill(hours, 1.0, "spot", 0.40, 1.00, policy, 300.0, "aws")
    r = row(DIURNAL, policy, "spot", startup_s=300.0)
    assert bill.monthly_cost == pytest.approx(r.monthly_cost)
