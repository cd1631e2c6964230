"""The build-versus-buy volume maths: where a self-hosted replica (paid by the hour, in whole replicas) and an API
(paid per token) cost the same, checked against figures worked out by hand."""

import pytest

from infercost.cost.crossover import api_monthly, cost_curve, crossover, daily_volume, scaled_demand, \
    self_hosted_monthly
from infercost.cost.pricing import CostRow, FleetPolicy
from infercost.report.charts import cost_vs_volume
from infercost.spec.workload import Demand


def row(kind: str, **fields) -> CostRow:
    base = dict(kind=kind, workload="w", deployment="self-hosted x" if kind != "api" else "vendor/model", tags={},
                provider="p", region="r", region_name=None, sku="s", accelerator="L4", accelerator_count=1,
                pricing="on_demand", hourly_price=None, list_hourly_price=None, currency="USD", capacity_rps=None,
                target_utilisation=None, cost_per_1k_requests=0.0, cost_per_1m_output_tokens=None,
                cost_per_1m_total_tokens=None, mean_input_tokens=None, mean_output_tokens=None, price_source="t",
                price_as_of="2026-01-01", capacity_basis=None, evidence=None)
    return CostRow(**{**base, **fields})


SELF = row("projected", hourly_price=1.0, capacity_rps=1.0, target_utilisation=1.0, cost_per_1k_requests=0.2778)
FLAT = Demand(requests_per_day=50_000)


def test_crossover_where_one_replica_costs_what_the_api_charges():
    # one replica: $1/h x 730 h = $730 a month, enough for 86,400 requests/day; the API at $0.001 a request costs
    # 0.001 x V x 730/24 a month, which reaches $730 at V = 24,000 requests/day. Above 86,400 a second replica
    # ($1,460) is still below the API's $2,628 there, so self-hosting stays cheaper.
    api = row("api", cost_per_1k_requests=1.0)
    x = crossover(SELF, api, FLAT)
    assert x.self_hosted_cheaper_above and x.requests_per_day == pytest.approx(24_000, rel=1e-4)
    assert "above 24,000 requests/day" in x.note
    assert self_hosted_monthly(SELF, FLAT, 100_000) == pytest.approx(1460)
    assert api_monthly(api, 24_000) == pytest.approx(730)


def test_no_crossover_when_a_busy_replica_costs_more_per_request_than_the_api():
    # $1/h at 1 req/s is $0.000278 a request; an API at $0.0001 a request is cheaper at any volume
    x = crossover(SELF, row("api", cost_per_1k_requests=0.1), FLAT)
    assert x.requests_per_day is None and not x.self_hosted_cheaper_above
    assert "never beats vendor/model" in x.note and "$0.000278" in x.note


def test_the_last_crossing_even_where_the_api_wins_back_only_a_narrow_stretch():
    # the API at $0.0003 a request, 8% above a busy replica's $0.000278: just above each multiple of 86,400/day a
    # new replica ($730/month) makes self-hosting dearer again until the API's bill catches up. With 13 replicas
    # (above 1,036,800/day) the API costs 0.0003 x V x 730/24 against 13 x $730: equal at V = 13 x 24 / 0.0003 =
    # 1,040,000, a stretch of 0.3% that a 400-point grid misses; with 14 (above 1,123,200) the API is already dearer
    api = row("api", cost_per_1k_requests=0.3)
    x = crossover(SELF, api, FLAT)
    assert x.requests_per_day == pytest.approx(1_040_000) and x.self_hosted_cheaper_above
    assert self_hosted_monthly(SELF, FLAT, 1_039_000) == pytest.approx(13 * 730)
    assert api_monthly(api, 1_039_000) < 13 * 730
    assert self_hosted_monthly(SELF, FLAT, 1_123_300) == pytest.approx(14 * 730)
    assert api_monthly(api, 1_123_300) > 14 * 730


def test_never_when_replicas_sized_on_the_peak_cost_more_per_request_than_the_api():
    # no profile: replicas are sized on the peak, 3 times the mean, so at scale a request costs 3 x $0.000278 =
    # $0.000833; the API's $0.0005 is above a busy replica's cost but below that, so self-hosting never wins
    x = crossover(SELF, row("api", cost_per_1k_requests=0.5), Demand(requests_per_day=86_400, peak_rps=3.0))
    assert x.requests_per_day is None and not x.self_hosted_cheaper_above
    assert "$0.000833" in x.note and "$0.000500" in x.note


def test_a_profile_makes_the_curves_cross_three_times_and_the_last_one_counts():
    # 8 quiet hours at weight 1 and 16 busy at 4 (sum 72); the API at $2/3600 a request. Below 64,800/day the busy
    # hours run under 1 req/s: 24 replica-hours ($730), which the API reaches at 24 x 1,800 = 43,200/day. From
    # 64,800 the busy hours need 2 replicas: 40 replica-hours ($1,216.67), reached by the API at 40 x 1,800 = 72,000
    d = Demand(requests_per_day=50_000, hourly_profile=[1] * 8 + [4] * 16)
    api = row("api", cost_per_1k_requests=2 / 3.6)
    assert self_hosted_monthly(SELF, d, 50_000) == pytest.approx(730)
    assert api_monthly(api, 50_000) > 730
    assert self_hosted_monthly(SELF, d, 70_000) == pytest.approx(40 * 730 / 24)
    assert api_monthly(api, 70_000) < 40 * 730 / 24
    x = crossover(SELF, api, d)
    assert x.requests_per_day == pytest.approx(72_000) and "above 72,000 requests/day" in x.note
    # in steps of 2 every hour runs 2 replicas (48 replica-hours, which the API reaches at 86,400/day) until the busy
    # hours pass 2 req/s at 129,600/day and need 4: 16 x 4 + 8 x 2 = 80 replica-hours, reached at 144,000/day;
    # their next step, 6 replicas above 259,200/day (112 replica-hours), is below the API's 144 there
    assert crossover(SELF, api, d, FleetPolicy(scale_step=2)).requests_per_day == pytest.approx(144_000)


def test_scaled_demand_keeps_the_profile_and_the_peak_to_mean_ratio():
    profile = [1] * 12 + [3] * 12
    d = Demand(requests_per_day=24_000, peak_rps=0.5, hourly_profile=profile)
    s = scaled_demand(d, 48_000)
    assert s.requests_per_day == 48_000 and s.peak_rps == pytest.approx(1.0) and s.hourly_profile == profile
    assert daily_volume(Demand(peak_rps=2.0)) == pytest.approx(172_800)  # flat at the peak: an upper bound
    assert daily_volume(Demand(peak_rps=3.0, hourly_profile=[1, 3] * 12)) == pytest.approx((1 + 3) * 12 * 3600)


def test_with_a_profile_replicas_follow_the_busy_hours():
    # 12 quiet hours at 1 share and 12 busy at 3: at 172,800 requests/day the busy hours run at 3 req/s (3 replicas of
    # 1 req/s) and the quiet ones at 1 (1 replica): 48 replica-hours a day, $1,460 a month
    d = Demand(requests_per_day=172_800, hourly_profile=[1] * 12 + [3] * 12)
    assert self_hosted_monthly(SELF, d, 172_800) == pytest.approx((12 * 3 + 12 * 1) * 730 / 24)


def test_the_chart_draws_each_curve_and_marks_the_demand():
    api = row("api", cost_per_1k_requests=1.0)
    curves = cost_curve([SELF, api], FLAT, [1_000, 10_000, 100_000])
    assert [c["kind"] for c in curves] == ["self-hosted", "api"]
    assert curves[1]["points"][1] == (10_000, pytest.approx(api_monthly(api, 10_000)))
    svg = cost_vs_volume(curves, 50_000, [24_000])
    assert svg.startswith("<svg") and "vendor/model" in svg and "this workload: 50,000/day" in svg and "cross-over 24,000/day" in svg
    assert cost_vs_volume([], 1.0) is None
