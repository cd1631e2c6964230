"""The bill at the workload's demand: what a fleet of replicas costs in a month when it follows the demand hour by
hour, keeps a floor of replicas, scales in steps, pays each added replica's start-up, runs below its SLO capacity by
a target utilisation, and loses some spot hours to interruptions. This, not one replica's price over its full
capacity, is what a team pays; cost per 1k requests at capacity is the marginal cost at scale, reported beside it.

Every default is one an SRE would sign off, and says where it comes from."""

from __future__ import annotations

import csv
from importlib import resources
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from infercost.cost.formulas import HOURS_PER_MONTH, hourly_rps
from infercost.spec.common import Spec
from infercost.spec.workload import Demand

DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0

# Knative's autoscaler targets 70% of a replica's concurrency limit by default (container-concurrency-target-
# percentage: 70): the 30% left absorbs bursts within the scaling window while new replicas start.
DEFAULT_TARGET_UTILISATION = 0.7
# A projected replica's start-up: its weights read at this rate, plus a fixed part (process start, engine
# initialisation, CUDA graph capture, warm-up). See cost/data/SOURCES.md, "Start-up".
LOAD_GB_PER_S = 1.0
STARTUP_OVERHEAD_S = 60.0


class FleetPolicy(Spec):
    """How a fleet of replicas is run: part of the study (`fleet:`), because it is a production decision, not a
    property of the configuration searched."""

    target_utilisation: float = Field(
        default=DEFAULT_TARGET_UTILISATION, gt=0, le=1,
        description="share of a replica's SLO capacity to plan for (Knative's default target is 70%)")
    min_replicas: int = Field(
        default=1, ge=0, description="replicas kept running at any hour: an LLM server cannot start within a TTFT "
        "SLO, so scaling to zero would fail the first requests of every quiet hour")
    scale_step: int = Field(default=1, gt=0, description="replicas added or removed at a time")
    autoscale: bool = Field(default=True, description="follow the demand profile hour by hour where there is one")
    scale_up_s: float | None = Field(
        default=None, ge=0, description="seconds a replica added runs before it serves (paid, not serving); default: "
        "the start-up measured for the configuration, else projected from its weights")
    load_gb_per_s: float = Field(default=LOAD_GB_PER_S, gt=0,
                                 description="rate at which a projected replica reads its weights at start-up")
    startup_overhead_s: float = Field(default=STARTUP_OVERHEAD_S, ge=0,
                                      description="a projected replica's start-up besides reading its weights")
    on_demand_floor: int = Field(
        default=1, ge=0, description="replicas of a spot fleet kept on demand, so that the SLO holds while "
        "interrupted spot replicas are replaced (a notice of 30 s to 2 min is shorter than a server's start-up)")
    spot_hours_lost: float | None = Field(
        default=None, ge=0, lt=1, description="share of a spot replica's hours lost to interruption and served on "
        "demand instead; default: the provider's rate in cost/data/spot_interruption.csv")

    def startup_s(self, measured_s: float | None, weights_gb: float | None) -> tuple[float, str]:
        """The seconds an added replica is paid before it serves, and where that figure comes from."""
        if self.scale_up_s is not None:
            return self.scale_up_s, "fleet.scale_up_s"
        if measured_s is not None:
            return measured_s, "measured start-up"
        if weights_gb is not None:
            return (self.startup_overhead_s + weights_gb / self.load_gb_per_s,
                    f"projected: {weights_gb:.3g} GB of weights at {self.load_gb_per_s:g} GB/s + "
                    f"{self.startup_overhead_s:g} s")
        return self.startup_overhead_s, f"projected: {self.startup_overhead_s:g} s (weights unknown)"


class SpotRisk(BaseModel):
    provider: str
    hours_lost: float  # share of a spot replica's hours that fall back to on demand
    notice_s: float | None
    source: str
    basis: str


def _spot_table() -> dict[str, SpotRisk]:
    text = resources.files("infercost.cost").joinpath("data/spot_interruption.csv").read_text()
    out = {}
    for r in csv.DictReader(line for line in text.splitlines() if not line.startswith("#")):
        per_month, fallback = float(r["interruptions_per_month"]), float(r["fallback_hours"])
        out[r["provider"]] = SpotRisk(
            provider=r["provider"], hours_lost=per_month * fallback / HOURS_PER_MONTH,
            notice_s=float(r["notice_s"]) if r["notice_s"] else None, source=r["source"],
            basis=f"{r['basis']}: {per_month:g} interruptions a replica-month, each served on demand for "
                  f"{fallback:g} h")
    return out


SPOT_RISK = _spot_table()


def spot_risk(provider: str, policy: FleetPolicy) -> SpotRisk:
    """The interruption assumption for a provider's spot offers: the study's, else the provider's, else the
    table's default row."""
    if policy.spot_hours_lost is not None:
        return SpotRisk(provider=provider, hours_lost=policy.spot_hours_lost, notice_s=None,
                        source="the study (fleet.spot_hours_lost)", basis="set by the study")
    return SPOT_RISK.get(provider) or SPOT_RISK["default"].model_copy(update={"provider": provider})


class DemandHours(BaseModel):
    """The workload's demand as 24 hourly rates: those the fleet is sized for and those served (they differ when
    only a peak is known without a profile: sized for the peak, billed for the day's requests)."""

    sizing_rps: list[float]
    served_rps: list[float]
    basis: str

    @property
    def monthly_requests(self) -> float:
        return sum(self.served_rps) * 3600.0 * DAYS_PER_MONTH

    @property
    def peak_rps(self) -> float:
        return max(self.sizing_rps)


def demand_hours(demand: Demand | None) -> DemandHours | None:
    """None when the workload gives no demand: then no bill can be computed."""
    if demand is None:
        return None
    if demand.hourly_profile and (demand.requests_per_day or demand.peak_rps):
        rates = hourly_rps(demand.hourly_profile, demand.requests_per_day, demand.peak_rps)
        return DemandHours(sizing_rps=rates, served_rps=rates, basis="the 24-hour profile")
    if demand.peak_rps and demand.requests_per_day:
        return DemandHours(sizing_rps=[demand.peak_rps] * 24, served_rps=[demand.requests_per_day / 86400.0] * 24,
                           basis="sized for peak_rps around the clock (no hourly profile to follow)")
    if demand.peak_rps:
        return DemandHours(sizing_rps=[demand.peak_rps] * 24, served_rps=[demand.peak_rps] * 24,
                           basis="flat at peak_rps (no requests_per_day: every hour at the peak)")
    if demand.requests_per_day:
        rate = demand.requests_per_day / 86400.0
        return DemandHours(sizing_rps=[rate] * 24, served_rps=[rate] * 24,
                           basis="flat at the day's mean rate (no peak_rps or profile: bursts are not sized for)")
    return None


class Bill(BaseModel):
    """One configuration's month at the workload's demand, with every part of it."""

    monthly_cost: float
    monthly_requests: float
    effective_cost_per_1k: float | None  # the bill over the requests served
    replicas_by_hour: list[int]
    replicas_at_peak: int
    replica_hours_per_day: float  # serving
    on_demand_replica_hours_per_day: float
    spot_replica_hours_per_day: float
    startup_replica_hours_per_day: float  # paid while added replicas start
    hourly_price: float  # per replica, at the pricing model
    effective_hourly_price: float  # spot: with interrupted hours served on demand
    basis: str
    spot: str | None = None  # the interruption assumption, for a spot bill


def replicas_by_hour(rates, capacity_rps: float, policy: FleetPolicy, pricing: str) -> np.ndarray:
    """Replicas each hour (`rates`: the 24 hourly rates, or rows of them): enough for that hour at the target
    utilisation, in whole scale steps, never below the minimum. Without autoscaling, or on a reserved term (paid
    every hour whether used or not), the busiest hour's count all day."""
    per_replica = capacity_rps * policy.target_utilisation
    steps = np.ceil(np.asarray(rates, dtype=float) / per_replica / policy.scale_step - 1e-9)
    need = np.maximum(policy.min_replicas, steps.astype(np.int64) * policy.scale_step)
    if not policy.autoscale or pricing.startswith("reserved"):
        need = np.broadcast_to(need.max(axis=-1, keepdims=True), need.shape).copy()
    return need


class FleetPrices(BaseModel):
    """What a replica-hour costs in a fleet on one offer and pricing model."""

    pricing: str
    floor_hourly: float  # the on-demand floor of a spot fleet; every replica otherwise
    fleet_hourly: float  # spot: expected, with the share of hours lost served on demand
    floor: int  # replicas at the floor price (all of them unless spot)
    spot: str | None = None

    @classmethod
    def of(cls, pricing: str, hourly: float, on_demand_hourly: float | None, policy: FleetPolicy,
           provider: str) -> "FleetPrices":
        if pricing != "spot":
            return cls(pricing=pricing, floor_hourly=hourly, fleet_hourly=hourly, floor=1 << 30)
        od = on_demand_hourly if on_demand_hourly is not None else hourly
        risk = spot_risk(provider, policy)
        return cls(pricing=pricing, floor_hourly=od, fleet_hourly=(1 - risk.hours_lost) * hourly + risk.hours_lost * od,
                   floor=policy.on_demand_floor,
                   spot=(f"spot: {policy.on_demand_floor} replica(s) kept on demand; {risk.hours_lost:.0%} of spot "
                         f"hours assumed lost to interruption and served on demand ({risk.provider}: {risk.basis}; source: {risk.source})"))


def daily_cost(n: np.ndarray, prices: FleetPrices, startup_s: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A day's cost of the replica counts `n` (24 per row): serving hours at their price, plus `startup_s` paid for
    every replica added at an hour's start (the day wraps: hour 0 follows hour 23). Returns the cost and the
    replica-hours behind it (floor, fleet, start-up)."""
    floor = np.minimum(n, prices.floor)
    rest = n - floor
    up = startup_s / 3600.0
    added_floor = np.maximum(0, floor - np.roll(floor, 1, axis=-1)).sum(axis=-1) * up
    added_rest = np.maximum(0, rest - np.roll(rest, 1, axis=-1)).sum(axis=-1) * up
    floor_h, rest_h = floor.sum(axis=-1), rest.sum(axis=-1)
    cost = (floor_h + added_floor) * prices.floor_hourly + (rest_h + added_rest) * prices.fleet_hourly
    return cost, {"floor": floor_h, "fleet": rest_h, "startup": added_floor + added_rest}


def fleet_bill(hours: DemandHours, capacity_rps: float, pricing: str, hourly: float, on_demand_hourly: float | None,
               policy: FleetPolicy, startup_s: float, provider: str = "default") -> Bill:
    """The month's bill. Each replica added at an hour boundary is paid `startup_s` before it serves (it must be
    up when the hour starts). A spot fleet keeps `on_demand_floor` replicas on demand; each spot replica-hour is
    priced as expected: the share lost to interruption at the on-demand price, the rest at the spot price."""
    n = replicas_by_hour(hours.sizing_rps, capacity_rps, policy, pricing)
    prices = FleetPrices.of(pricing, hourly, on_demand_hourly, policy, provider)
    daily, parts = daily_cost(n, prices, startup_s)
    monthly = float(daily) * DAYS_PER_MONTH
    requests = hours.monthly_requests
    if not policy.autoscale or pricing.startswith("reserved"):
        how = f"{int(n[0])} replica(s) around the clock" + (
            " (a reserved term is paid every hour)" if policy.autoscale else " (autoscaling off)")
    else:
        how = (f"autoscaled hour by hour, {int(n.min())}-{int(n.max())} replicas (min {policy.min_replicas}, step "
               f"{policy.scale_step})")
    basis = (f"{how} at {policy.target_utilisation:.0%} of SLO capacity on {hours.basis}; each added replica paid "
             f"{startup_s:.0f} s of start-up")
    if prices.spot:
        basis += f"; {prices.spot}"
    spot = pricing == "spot"
    return Bill(monthly_cost=monthly, monthly_requests=requests,
                effective_cost_per_1k=monthly / requests * 1000.0 if requests > 0 else None,
                replicas_by_hour=[int(x) for x in n], replicas_at_peak=int(n.max()),
                replica_hours_per_day=float(n.sum()),
                on_demand_replica_hours_per_day=float(parts["floor"]) if spot or pricing == "on_demand" else 0.0,
                spot_replica_hours_per_day=float(parts["fleet"]) if spot else 0.0,
                startup_replica_hours_per_day=float(parts["startup"]), hourly_price=hourly,
                effective_hourly_price=prices.fleet_hourly, basis=basis, spot=prices.spot)


def api_bill(hours: DemandHours, cost_per_request: float) -> Bill:
    """A hosted API bills each request and nothing for idle hours: the same demand, priced per token."""
    requests = hours.monthly_requests
    monthly = cost_per_request * requests
    return Bill(monthly_cost=monthly, monthly_requests=requests,
                effective_cost_per_1k=cost_per_request * 1000.0 if requests > 0 else None, replicas_by_hour=[],
                replicas_at_peak=0, replica_hours_per_day=0.0, on_demand_replica_hours_per_day=0.0,
                spot_replica_hours_per_day=0.0, startup_replica_hours_per_day=0.0, hourly_price=0.0,
                effective_hourly_price=0.0, basis=f"token prices x the requests of {hours.basis}")


Objective = Literal["bill", "cost_per_1k_at_capacity"]
