"""The study: what to search (models, engines, precisions, batching, caching, placements), what to minimise, what
must hold (quality, SLOs, capacity, budget), today's plan to compare against, and how (measure here, project, or
both)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from infercost.capacity.result import CapacityOptions
from infercost.cost.fleet import FleetPolicy, demand_hours
from infercost.spec.common import FileSpec, Spec
from infercost.spec.vocabulary import ENGINE_PRECISIONS, PRICING_MODELS, PricingModel

PROJECTED_ENGINES = ("vllm",)  # engines the projection models (continuous batching); the others run only `here`


def _some(v: Any, info: ValidationInfo, what: str | None) -> Any:
    """An empty candidate list is an error: Optuna cannot choose from nothing, and a list that silently became a
    default would search something else than what was written."""
    if isinstance(v, list) and not v:
        if what is not None:
            raise ValueError(f"expected at least one {what}")
        default = "any" if info.field_name in ("providers", "regions") else "its default"
        raise ValueError(f"expected at least one candidate (leave '{info.field_name}' out for {default})")
    return v


class IntRange(Spec):
    low: int = Field(gt=0)
    high: int = Field(gt=0)
    log: bool = True

    @model_validator(mode="after")
    def _order(self) -> "IntRange":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class Placements(Spec):
    """Where a configuration may run. `here` means this machine (measured); accelerator names come from the
    hardware table and are priced on catalog offers with that accelerator."""

    hardware: list[str] = Field(default_factory=lambda: ["here"])
    devices: list[int] = Field(default_factory=lambda: [1])
    providers: list[str] | None = Field(default=None, description="leave out for any provider")
    regions: list[str] | None = Field(default=None, description="leave out for any region")
    pricing: list[PricingModel] = Field(default_factory=lambda: ["on_demand"])

    @field_validator("hardware", "devices", "providers", "regions", "pricing")
    @classmethod
    def _candidates(cls, v: Any, info: ValidationInfo) -> Any:
        return _some(v, info, "place (an accelerator name or 'here')" if info.field_name == "hardware" else None)


API_PREFIX = "api"  # the engine name of a hosted-API candidate in the search space


class ApiCandidate(Spec):
    """A hosted model bought per token, competing with the self-hosted placements. `name` is the catalog's
    vendor/model; the other fields override the catalog row (another endpoint, your tier's rate limits)."""

    name: str = Field(description="vendor/model as in the catalog's token prices")
    base_url: str | None = Field(default=None, pattern=r"^https?://", description="default: the catalog's")
    served_model: str | None = Field(default=None, description="the model name the endpoint expects")
    api_key_env: str | None = Field(default=None, description="environment variable holding the key")
    requests_per_minute: float | None = Field(default=None, gt=0, description="your tier's request limit")
    tokens_per_minute: float | None = Field(default=None, gt=0, description="your tier's token limit")
    cached_input_share: float = Field(default=0.0, ge=0, le=1,
                                      description="share of input tokens you expect billed at the cached price")

    @field_validator("name")
    @classmethod
    def _vendor_model(cls, v: str) -> str:
        vendor, _, model = v.partition("/")
        if not vendor.strip() or not model.strip() or any(c.isspace() for c in v):
            raise ValueError("expected vendor/model as in the catalog's token prices, e.g. groq/llama-3.1-8b-instant")
        return v

    @property
    def vendor(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def model(self) -> str:
        return self.name.split("/", 1)[1]


class QualitySource(Spec):
    """An OpenAI-compatible endpoint serving a model (at a precision) that cannot run here: a GPU box of yours or a
    hosted provider. Its answers stand for the model's answers at that precision, are scored like answers made here
    and cached under the same key; every figure names the endpoint. infercost cannot check that the endpoint really
    serves what is declared: the declaration is recorded with every figure."""

    model: str = Field(min_length=1, description="the model as the space names it")
    precision: str | None = Field(default=None, description="leave out for every precision of the model")
    base_url: str = Field(description="e.g. http://gpu-box:8000/v1")
    served_model: str = Field(min_length=1, description="the model name the endpoint expects")
    api_key_env: str | None = Field(default=None, description="environment variable holding the key")
    request_timeout_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _endpoint(self) -> "QualitySource":
        self.endpoint()  # the same checks as an openai deployment's base_url and key variable
        return self

    def endpoint(self):
        from pydantic import ValidationError

        from infercost.spec.deployment import OpenAIDeployment

        try:
            return OpenAIDeployment(engine="openai", model=self.served_model, base_url=self.base_url,
                                    api_key_env=self.api_key_env, request_timeout_s=self.request_timeout_s)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise ValueError(f"{'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}") \
                from None

    def serves(self, model: str, precision: str) -> bool:
        return self.model == model and self.precision in (None, precision)


class SearchSpace(Spec):
    models: list[str]
    engines: list[Literal["vllm", "transformers"]] = Field(default_factory=lambda: ["vllm"])
    precisions: dict[str, list[str]] = Field(
        default_factory=dict, description="per engine: dtypes / quantisations to try (default: the engine's first)")
    max_num_seqs: IntRange | list[int] = Field(default_factory=lambda: [16])
    max_num_batched_tokens: list[int | None] = Field(default_factory=lambda: [None])
    enable_prefix_caching: list[bool] = Field(default_factory=lambda: [True])
    kv_cache_dtype: list[str] = Field(default_factory=lambda: ["auto"], description="vLLM only")
    placements: Placements = Field(default_factory=Placements)
    apis: list[ApiCandidate] = Field(
        default_factory=list, description="hosted models priced per token (vendor/model from the catalog), "
        "competing with the self-hosted placements under the same constraints")

    @field_validator("apis", mode="before")
    @classmethod
    def _api_names(cls, v: Any) -> Any:
        return [{"name": a} if isinstance(a, str) else a for a in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _distinct_apis(self) -> "SearchSpace":
        names = [a.name for a in self.apis]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"apis: {dup} is listed twice")
        return self

    def api(self, name: str) -> ApiCandidate:
        return next(a for a in self.apis if a.name == name)

    @field_validator("models", "engines", "max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching",
                     "kv_cache_dtype")
    @classmethod
    def _candidates(cls, v: Any, info: ValidationInfo) -> Any:
        models = info.field_name == "models"
        return _some(v, info, "model (a projection preset, bundled alias or model directory)" if models else None)

    @model_validator(mode="after")
    def _precisions(self) -> "SearchSpace":
        for engine, values in self.precisions.items():
            if engine not in ENGINE_PRECISIONS:
                raise ValueError(f"precisions for unknown engine '{engine}'")
            if not values:  # an empty list used to fall back to the engine's first precision without a word
                raise ValueError(f"precisions.{engine}: expected at least one of {', '.join(ENGINE_PRECISIONS[engine])}"
                                 f" (leave '{engine}' out for its default, {ENGINE_PRECISIONS[engine][0]})")
            if engine not in self.engines:
                raise ValueError(f"precisions.{engine}: '{engine}' is not in engines ({', '.join(self.engines)}), so "
                                 "these would never be tried")
            unknown = [v for v in values if v not in ENGINE_PRECISIONS[engine]]
            if unknown:
                raise ValueError(f"{engine}: unknown precision {unknown[0]!r}: expected one of "
                                 f"{', '.join(ENGINE_PRECISIONS[engine])}")
        return self

    @model_validator(mode="after")
    def _placeable(self) -> "SearchSpace":
        for engine in self.engines:
            if engine not in PROJECTED_ENGINES and "here" not in self.placements.hardware:
                raise ValueError(f"engine '{engine}' is only measured here, and placements.hardware has no 'here'")
        return self

    def precisions_for(self, engine: str) -> list[str]:
        return self.precisions.get(engine) or [ENGINE_PRECISIONS[engine][0]]


class Constraints(Spec):
    quality: bool = Field(default=True, description="apply the workload's quality target")
    min_capacity_rps: float | None = Field(default=None, gt=0, description="per replica")
    budget: bool = Field(default=True, description="monthly cost within the workload's budget")
    decision: Literal["pessimistic", "central"] = Field(
        default="pessimistic", description="judge min_capacity and budget at the unfavourable end of each figure's "
        "interval (pessimistic) or at its central value")


class Baseline(Spec):
    deployment: dict[str, Any] = Field(description="today's deployment, as in a deployment file")
    hardware: str = "here"
    devices: int = 1
    pricing: PricingModel = "on_demand"
    provider: str | None = None


class StudySpec(FileSpec):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    workload: str = Field(description="workload YAML, relative to the study file")
    mode: Literal["measure", "project", "hybrid"] = "project"
    objective: Literal["bill", "cost_per_1k_at_capacity"] | None = Field(
        default=None, description="bill: the monthly bill at the workload's demand (the default where the workload "
        "gives a demand); cost_per_1k_at_capacity: every replica busy at the target utilisation, the marginal cost "
        "at scale (the default, and the only figure, without a demand)")
    fleet: FleetPolicy = Field(default_factory=FleetPolicy, description="how the fleet is run: target utilisation, "
                               "minimum replicas, scale step, start-up, spot floor and interruption")
    multi_objective: bool = Field(default=False, description="cost, p95 TTFT and quality: a Pareto front")
    space: SearchSpace
    fixed: dict[str, Any] = Field(default_factory=dict, description="deployment fields set on every trial")
    constraints: Constraints = Field(default_factory=Constraints)
    baseline: Baseline | None = None
    capacity: CapacityOptions = Field(default_factory=lambda: CapacityOptions(precision=0.1))
    sampler: Literal["tpe", "nsga2", "random", "grid"] = "tpe"
    warm_start: bool = Field(default=True, description="evaluate first the configurations the closed-form estimate "
                             "ranks cheapest (a share of n_trials), then let the sampler explore")
    n_trials: int = Field(default=20, gt=0)
    seed: int = 0
    calibration: str | None = Field(default=None, description="calibration file for projections of `here`")
    quality_sources: list[QualitySource] = Field(
        default_factory=list, description="endpoints that serve models which cannot run here, to score their answers")

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_names(cls, v: Any) -> Any:
        """Names of earlier versions: the month was 'monthly_cost'; one replica's price over its capacity was
        'cost_per_1k_requests', which now names the effective figure, so it is read as what it computed."""
        return {"monthly_cost": "bill", "cost_per_1k_requests": "cost_per_1k_at_capacity"}.get(v, v)

    def objective_for(self, workload: Any) -> Literal["bill", "cost_per_1k_at_capacity"]:
        """The objective this study minimises on `workload`: its bill where the workload gives a demand (the bill
        cannot be computed without one), else the cost at capacity."""
        if demand_hours(workload.demand) is None:
            return "cost_per_1k_at_capacity"
        return self.objective or "bill"

    @model_validator(mode="after")
    def _consistent(self) -> "StudySpec":
        if self.multi_objective and self.sampler == "tpe":
            self.sampler = "nsga2"
        if self.sampler == "nsga2" and not self.multi_objective:
            raise ValueError("sampler 'nsga2' is for multi_objective studies")
        bad = [p for p in self.space.placements.pricing if p not in PRICING_MODELS]
        if bad:
            raise ValueError(f"unknown pricing {bad[0]}")
        for i, source in enumerate(self.quality_sources):
            if source.model not in self.space.models:
                raise ValueError(f"quality_sources[{i}]: model {source.model!r} is not in space.models "
                                 f"({', '.join(self.space.models)}), so it would never be used")
            known = sorted({p for e in self.space.engines for p in self.space.precisions_for(e)})
            if source.precision is not None and source.precision not in known:
                raise ValueError(f"quality_sources[{i}]: precision {source.precision!r} is not searched: expected "
                                 f"one of {', '.join(known)} (or leave it out for every precision)")
        return self

    def quality_source(self, model: str, precision: str) -> QualitySource | None:
        """The first declared endpoint serving `model` at `precision` (a source naming the precision comes first)."""
        matches = [s for s in self.quality_sources if s.serves(model, precision)]
        return min(matches, key=lambda s: s.precision is None) if matches else None
