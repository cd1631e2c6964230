"""What a study recommends, typed: the winner, the alternatives and why each lost, the trade-offs, the FinOps view
and the evidence behind every figure. The report renders this object and computes nothing of its own; report.json is
its JSON, so every number the markdown and HTML show can be checked against it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from infercost.cost.pricing import CostRow
from infercost.metrics.intervals import Confidence


class Record(BaseModel):
    """A part of the recommendation. Fields in `omit_when_none` only appear in its JSON when they apply (a
    projected winner has no measurement directory, a workload without a budget no budget status)."""

    model_config = ConfigDict(populate_by_name=True)
    omit_when_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit(self, handler):
        data = handler(self)
        return {k: v for k, v in data.items() if not (v is None and k in self.omit_when_none)}


class WorkloadFacts(Record):
    name: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    slo: dict[str, dict[str, float]] = Field(default_factory=dict)
    max_error_rate: float | None = None
    demand: dict[str, Any] = Field(default_factory=dict)
    quality_target: dict[str, Any] | None = None


class TrialCounts(Record):
    total: int
    feasible: int


class Lost(Record):
    """A configuration that could not be recommended, and why (screened out, infeasible, or a constraint)."""

    trial: int
    config: str
    status: str
    reason: str | None = None


class SloMargin(Record):
    bound: float
    observed: float
    margin: float  # share of the bound left: 1 - observed / bound


class BaselineFacts(Record):
    label: str
    cost_per_1k_requests: float | None
    monthly_cost: float | None = None
    status: str
    reason: str | None = None


class Comparison(Record):
    """The winner against another configuration, on the objective's intervals: a lead that survives both intervals
    is a decision; overlapping intervals are a race too close to call on this evidence."""

    other: str
    other_objective: float | None
    other_interval: tuple[float, float] | None = None
    winner_interval: tuple[float, float] | None = None
    verdict: Literal["beyond the intervals", "too close to call", "no intervals"]
    note: str


class Winner(Record):
    omit_when_none: ClassVar[frozenset[str]] = frozenset(
        {"confidence", "cost_per_1k_requests_low", "cost_per_1k_requests_high", "monthly_cost_low",
         "monthly_cost_high", "capacity_low_rps", "capacity_high_rps", "versus_runner_up", "versus_baseline",
         "margin_inside_band", "settle_with", "settle_on", "savings_withheld", "quality_settle_with",
         "capacity_basis", "cost_per_1k_at_capacity", "startup_s", "startup_basis", "spot_assumption",
         "monthly_requests", "replicas_by_hour"})

    trial: int
    config: dict[str, Any]
    label: str
    kind: str | None
    provider: str
    region: str
    sku: str
    pricing: str
    # what the study minimised: the bill at the workload's demand, or (without a demand) the cost at capacity
    objective: Literal["bill", "cost_per_1k_at_capacity"] = "bill"
    # the headline: the bill over the requests served (effective), or at capacity where no bill can be computed
    cost_per_1k_requests: float
    cost_per_1k_basis: str = "effective"
    cost_per_1k_at_capacity: float | None = None  # the marginal cost at scale
    cost_per_1m_output_tokens: float | None = None
    cost_per_1m_total_tokens: float | None = None
    monthly_cost: float | None = None
    monthly_requests: float | None = None
    monthly_cost_basis: str | None = None
    replicas_at_peak: int | None = None
    replicas_by_hour: list[int] | None = None
    startup_s: float | None = None
    startup_basis: str | None = None
    spot_assumption: str | None = None
    capacity_rps: float | None = None
    capacity_basis: str | None = None  # an API: the rate limit that is its capacity
    savings_vs_baseline: float | None = None
    # why no saving against the baseline is claimed: the winner's quality was not checked against the target
    savings_withheld: str | None = None
    baseline: BaselineFacts | None = None
    slo_margins: dict[str, SloMargin] = Field(default_factory=dict)
    quality_score: float | None = None
    quality_ci95: tuple[float, float] | None = None
    quality_met: bool | None = None
    quality_source: str | None = None
    binding: str
    expected_error: float | None = None  # projected: the calibration's typical relative error
    price_source: str | None = None
    price_as_of: str | None = None
    confidence: Confidence | None = None
    capacity_low_rps: float | None = None
    capacity_high_rps: float | None = None
    cost_per_1k_requests_low: float | None = None
    cost_per_1k_requests_high: float | None = None
    monthly_cost_low: float | None = None
    monthly_cost_high: float | None = None
    versus_runner_up: Comparison | None = None
    versus_baseline: Comparison | None = None
    # a projected winner whose smallest SLO margin is inside its error band: the projection cannot tell whether
    # the SLO holds there, and `settle_with` is the measurement that would
    margin_inside_band: bool | None = None
    settle_with: str | None = None
    settle_on: str | None = None  # where to run it
    quality_settle_with: str | None = None  # the measurement that would check its quality


class Alternative(Record):
    trial: int
    label: str
    kind: str | None
    cost_per_1k_requests: float
    cost_per_1k_at_capacity: float | None = None
    ttft_p95_ms: float | None = None
    monthly_cost: float | None = None
    quality: float | None = None
    why_not: str


class ParetoPoint(Record):
    trial: int
    label: str
    cost_per_1k_requests: float | None
    ttft_p95_ms: float | None = None
    quality: float | None = None


class TrialRow(Record):
    omit_when_none: ClassVar[frozenset[str]] = frozenset({"capacity_low_rps", "capacity_high_rps", "tier"})

    trial: int
    config: str
    status: str
    kind: str | None = None
    capacity_rps: float | None = None
    cost_per_1k: float | None = None  # effective (the bill over the requests served) where there is a demand
    monthly_cost: float | None = None
    ttft_p95_ms: float | None = None
    quality: float | None = None
    reason: str | None = None
    slo_observed: dict[str, float | None] = Field(default_factory=dict)
    capacity_low_rps: float | None = None
    capacity_high_rps: float | None = None
    tier: str | None = None  # measured | calibrated projection | default projection


class DemandCase(Record):
    demand_factor: float
    monthly_cost: float | None
    replicas_at_peak: int | None


class SloCase(Record):
    slo: str
    factor: float
    capacity_rps: float | None
    cost_per_1k_requests: float | None
    method: str


class Sensitivity(Record):
    demand: list[DemandCase] = Field(default_factory=list)
    slo: list[SloCase] = Field(default_factory=list)
    spot_note: str


class FinOps(Record):
    omit_when_none: ClassVar[frozenset[str]] = frozenset({"budget", "value"})

    tags: dict[str, str] = Field(default_factory=dict)
    showback: list[dict[str, Any]] = Field(default_factory=list)
    budget: dict[str, Any] | None = None
    value: dict[str, Any] | None = None


class QualityExample(Record):
    id: str
    prompt: str
    answer: str
    reference: str | None = None
    score: float


class Evidence(Record):
    """Measured: the run directory, versions, hardware and date. Projected: the efficiencies it rests on."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset(
        {"directory", "versions", "hardware", "measured_at", "engine", "projection", "efficiency", "node"})

    kind: str | None
    metric_definitions: dict[str, str]
    reproduce: str
    probes: int | None = None
    requests_per_probe: int | None = None
    quality_source: str | None = None
    quality_ci95: tuple[float, float] | None = None
    expected_error: float | None = None
    price: dict[str, str | None]
    directory: str | None = None
    versions: dict[str, Any] | None = None
    hardware: dict[str, Any] | None = None
    measured_at: str | None = None
    engine: dict[str, Any] | None = None
    projection: str | None = None
    efficiency: str | None = None
    node: str | None = None  # a trial measured on a cluster: the node, and the stand-in if one measured instead


class BuyOption(Record):
    """A self-hosted configuration or a hosted API, as the build-versus-buy verdict weighs it."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"trial", "reason"})

    trial: int | None = None
    label: str
    kind: str  # measured | projected | api
    status: str  # feasible | infeasible | not searched
    cost_per_1k_requests: float | None = None
    monthly_cost: float | None = None
    latency: str | None = None  # how its latency is known: measured, projected, or why not
    quality: str | None = None  # where its quality was measured, or why not
    reason: str | None = None  # why it does not meet every constraint


class BuildOrBuy(Record):
    """The cheapest option that meets every constraint, self-hosted or bought per token; the daily volume above
    which self-hosting the best configuration is cheaper than the API; and monthly cost against daily volume."""

    choice: Literal["build", "buy", "none"] = "none"
    verdict: str = ""
    basis: str | None = None  # what was compared: the monthly bill at the workload's demand, or the objective
    best_self_hosted: BuyOption | None = None
    best_api: BuyOption | None = None
    apis: list[BuyOption] = Field(default_factory=list)  # every API the study searched, cheapest first
    not_searched: list[BuyOption] = Field(default_factory=list)  # catalog APIs outside the study: cost only
    crossover_requests_per_day: float | None = None
    crossover_note: str | None = None
    crossover_against: str | None = None
    demand_requests_per_day: float | None = None
    curves: list[dict[str, Any]] = Field(default_factory=list)  # label, kind, points: (requests/day, $/month)


class Unverified(Record):
    """A configuration cheaper than what was recommended (or anything, when nothing was), ruled out only because
    nothing could check its quality, and the measurement that would settle it."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"settle_with"})

    trial: int
    label: str
    cost_per_1k_requests: float | None
    quality: str | None
    settle_with: str | None = None


class Recommendation(Record):
    """`winner` is None when no configuration met the targets; `rejected` then says why each failed. `verdict` says
    in one sentence how sure the choice is. Every part that names a winner (build or buy, budget, FinOps, the
    alternatives, the cross-over) speaks of `winner`: one report, one answer."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"quality_examples", "verdict", "decision", "build_or_buy",
                                                          "no_bill"})

    title: str
    study: str
    mode: str
    generated_at: str
    objective: Literal["bill", "cost_per_1k_at_capacity"] = "bill"
    no_bill: str | None = None  # why no bill could be computed (the workload gives no demand)
    fleet: dict[str, Any] = Field(default_factory=dict)  # the fleet policy every bill was computed with
    workload: WorkloadFacts
    trials: TrialCounts
    winner: Winner | None = Field(default=None, alias="recommendation")
    alternatives: list[Alternative] = Field(default_factory=list)
    rejected: list[Lost] = Field(default_factory=list)
    pareto: list[ParetoPoint] = Field(default_factory=list)
    placements: list[CostRow] = Field(default_factory=list)  # the winner's configuration on every offer and term
    build_vs_buy: list[CostRow] = Field(default_factory=list)  # hosted APIs at the winner's token counts
    build_or_buy: BuildOrBuy | None = None  # the verdict, with the cross-over volume
    quality_unverified: list[Unverified] = Field(default_factory=list)
    sensitivity: Sensitivity | None = None
    finops: FinOps | None = None
    evidence: Evidence | None = None
    all_trials: list[TrialRow] = Field(default_factory=list)
    quality_examples: list[QualityExample] | None = None  # the winner's lowest-scoring answers
    verdict: str | None = None
    decision: str | None = None  # constraints judged at the pessimistic end of each interval, or the central value
    focus_rows: list[CostRow] = Field(default_factory=list, exclude=True)  # what the FOCUS export bills

    def contradictions(self) -> list[str]:
        """Where a part of the report names another answer than the recommendation (empty: one answer). Build or
        buy must choose the winner's side and name it, the budget and the FinOps figures must be its bill."""
        out = []
        w, b = self.winner, self.build_or_buy
        if b is not None:
            if w is None and b.choice != "none":
                out.append(f"build or buy chooses {b.choice} while nothing is recommended")
            if w is not None:
                chosen = b.best_api if b.choice == "buy" else b.best_self_hosted if b.choice == "build" else None
                side = "buy" if w.kind == "api" else "build"
                if b.choice != side or chosen is None or chosen.label != w.label:
                    out.append(f"build or buy names {chosen.label if chosen else b.choice}, the recommendation is "
                               f"{w.label}")
        if w is not None and self.finops is not None and self.finops.budget is not None and \
                self.finops.budget.get("monthly_cost") != w.monthly_cost:
            out.append(f"the budget is judged on {self.finops.budget.get('monthly_cost')}, the recommendation's bill "
                       f"is {w.monthly_cost}")
        if w is not None and any(a.label == w.label for a in self.alternatives):
            out.append(f"{w.label} is both the recommendation and an alternative")
        return out

    def to_json(self) -> dict[str, Any]:
        """report.json's content."""
        return self.model_dump(mode="json", by_alias=True)
