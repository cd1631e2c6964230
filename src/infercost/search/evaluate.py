"""One trial: screen the configuration without running it (memory, what the hardware supports, latency floors
against the SLO), then measure it here or project it elsewhere, price it on the catalog, and check quality. Every
outcome is a result with its reason, including engine failures."""

from __future__ import annotations

import asyncio
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from infercost.capacity.measured import measure_capacity
from infercost.capacity.result import CapacityOptions, CapacityResult
from infercost.cost.catalog import Catalog
from infercost.cost.offers import offers_for, projected_throughput
from infercost.cost.pricing import CostRow, Throughput, api_cost_row, cost_rows, throughput_from_capacity
from infercost.engines import create_engine
from infercost.engines.reachability import unreachable
from infercost.errors import InputError
from infercost.redact import redact_text, redact_url
from infercost.measure import measure
from infercost.projection.analytic import estimate
from infercost.projection.project import Lengths, Projector, workload_lengths
from infercost.metrics.intervals import Confidence
from infercost.projection.setup import calibration_from, capacity_band, confidence_of, projector_for
from infercost.quality.evaluate import evaluate as evaluate_quality
from infercost.search.hosted import HostedApi, hosted_api, peak_rps
from infercost.search.space import TrialConfig
from infercost.search.spec import PROJECTED_ENGINES, StudySpec
from infercost.spec.deployment import Deployment, OpenAIDeployment
from infercost.spec.vocabulary import CONCRETE_DTYPES
from infercost.spec.loader import deployment_adapter, validate
from infercost.spec.workload import Workload
from infercost.store import RunStore


PROJECTED_MIN_PROBES = 16  # from 1 req/s, doubling reaches 2^15 before bisecting

class TrialOutcome(BaseModel):
    config: TrialConfig
    status: Literal["feasible", "infeasible", "rejected"]  # rejected: screened out without running
    reason: str | None = None
    kind: Literal["measured", "projected", "api"] | None = None  # api: a hosted model bought per token
    capacity_rps: float | None = None
    # where the capacity may lie (measured: always-pass to always-fail loads; projected: the error band's ends,
    # simulated), and the objective at those ends (its low end at the high capacity)
    capacity_low_rps: float | None = None
    capacity_high_rps: float | None = None
    objective_low: float | None = None
    objective_high: float | None = None
    confidence: Confidence | None = None
    ttft_p95_ms: float | None = None  # at the capacity probe
    slo_observed: dict[str, float | None] = Field(default_factory=dict)  # every SLO statistic at the capacity probe
    probes: int | None = None
    requests_per_probe: int | None = None
    cost: CostRow | None = None
    objective: float | None = None
    quality_score: float | None = None
    quality_met: bool | None = None
    quality_source: str | None = None
    # the command that would measure quality where nothing could (an endpoint serving the model)
    quality_settle_with: str | None = None
    quality_ci95: tuple[float, float] | None = None
    constraints: dict[str, float] = Field(default_factory=dict)  # <= 0 means satisfied
    binding: str | None = None
    evidence: str | None = None
    expected_error: float | None = None
    # a trial dispatched to a cluster: the node that measured it (Ray node id, host, accelerator resource, the
    # node's hardware as it reported it, the stand-in deployment if one measured it instead of the accelerator)
    node: dict[str, Any] | None = None
    dispatch: str | None = None  # where a trial of a cluster study ran, or why it was projected instead
    latency_measured: bool | None = None  # api: whether the SLO was measured through the vendor's endpoint
    latency_source: str | None = None  # api: where latency was measured, or why it was not
    capacity_basis: str | None = None  # api: which rate limit is its capacity

    def throughput(self, workload: Workload) -> Throughput:
        """What one replica of this configuration sustains, as priced for the study (to price it elsewhere)."""
        return self.cost.throughput().model_copy(update=dict(
            kind=self.kind or "projected", capacity_rps=self.capacity_rps, workload=workload.name,
            deployment=self.config.label(), tags=workload.tags.as_dict(), capacity_low_rps=self.capacity_low_rps,
            capacity_high_rps=self.capacity_high_rps, confidence=self.confidence))


def rank(o: TrialOutcome) -> tuple[float, float, float]:
    """The order in which outcomes are recommended: cheapest on the objective first; outcomes equal on it (at a low
    demand, many configurations cost one replica's month) by the marginal cost at scale, the one that stays cheaper as
    demand grows, then by p95 TTFT. One order for the recommendation, build or buy and the study's best."""
    at_capacity = o.cost.cost_per_1k_at_capacity if o.cost is not None else None
    return (math.inf if o.objective is None else o.objective, math.inf if at_capacity is None else at_capacity,
            math.inf if o.ttft_p95_ms is None else o.ttft_p95_ms)


class QualityNotCached(Exception):
    pass


def no_engine(_deployment: Deployment):
    """An engine factory for reading answers from the cache only: a miss is QualityNotCached, not a start."""
    raise QualityNotCached


class Evaluator:
    def __init__(self, spec: StudySpec, workload: Workload, store: RunStore, catalog: Catalog,
                 progress: Any = None, measured_on: Callable[[TrialConfig], bool] | None = None,
                 standin: dict[str, Any] | None = None, measured_elsewhere: bool = False):
        """`measured_on`: which placements other than `here` are measured rather than projected (a cluster node
        measures its own accelerator; a driver, what some node of its cluster has). `standin`: a deployment that is measured in place of each
        trial's on such hardware, for exercising a cluster that has no GPUs; every figure it gives says so.
        `measured_elsewhere`: this is the driver of a cluster study, which reuses what nodes measured and never starts
        an engine for their accelerators."""
        self.spec, self.workload, self.store, self.catalog, self.progress = spec, workload, store, catalog, progress
        self.measured_on, self.standin = measured_on, standin
        self.measured_elsewhere = measured_elsewhere
        self.quality_dir = Path(store.root) / "quality-cache"
        self._lengths: dict[str, Lengths] = {}
        self._capacities: dict[str, CapacityResult] = {}
        self._bands: dict[str, tuple[float | None, float | None]] = {}
        self._bounds: dict[str, float] = {}  # the analytic throughput bound of each screened configuration
        self._offered: dict[tuple[str, int], list] = {}
        self.calibration = calibration_from(spec.resolve(spec.calibration)) if spec.calibration else None
        self._unreachable: dict[str, str | None] = {}
        self.fleet = spec.fleet
        self.objective = spec.objective_for(workload)

    def objective_of(self, row: CostRow) -> float | None:
        """The figure the study minimises on a cost row, and its interval's ends (low at the high capacity)."""
        return row.monthly_cost if self.objective == "bill" else row.cost_per_1k_at_capacity

    def objective_ends(self, row: CostRow) -> tuple[float | None, float | None]:
        if self.objective == "bill":
            return row.monthly_cost_low, row.monthly_cost_high
        return row.cost_per_1k_at_capacity_low, row.cost_per_1k_at_capacity_high

    def endpoint_problem(self, base_url: str) -> str | None:
        """Why an endpoint cannot be reached (asked once per URL per study), or None."""
        if base_url not in self._unreachable:
            self._unreachable[base_url] = unreachable(base_url)
        return self._unreachable[base_url]

    def hosted(self, cfg: TrialConfig) -> HostedApi:
        return hosted_api(self.spec, self.catalog, cfg.model, self.spec.name)

    # ------------------------------------------------------------------ screening

    def deployment(self, cfg: TrialConfig) -> Deployment:
        """The trial's deployment, validated like a deployment file (a hosted API's: its endpoint)."""
        if cfg.is_api:
            api = self.hosted(cfg)
            if api.deployment is None:
                raise InputError(api.not_measurable() or "no endpoint", source=self.spec.name, field="space.apis")
            return api.deployment
        return validate(deployment_adapter(), cfg.deployment(self.spec.fixed), source=f"trial {cfg.label()}")

    def projector(self, cfg: TrialConfig, deployment: Deployment) -> Projector:
        # the fixed fields (a memory share among them) are for this machine; projected GPUs keep vLLM's default
        return projector_for(deployment, cfg.hardware, calibration=self.calibration, devices=cfg.devices,
                             memory_share_applies=cfg.hardware == "here")

    def projected_options(self, bound_rps: float | None = None) -> CapacityOptions:
        """A simulated probe costs milliseconds: a probe budget sized for measuring here would end a GPU's doubling
        phase early and report a floor as its capacity. `bound_rps`, the analytic throughput bound, starts the search
        at half of it (unless the study sets a start): the bracket is then found in a few probes instead of doubling
        from 1 req/s."""
        update: dict[str, Any] = {"max_probes": max(self.spec.capacity.max_probes, PROJECTED_MIN_PROBES)}
        if bound_rps and self.spec.capacity.start is None:
            update["start"] = max(self.spec.capacity.min_load, bound_rps / 2)
        return self.spec.capacity.model_copy(update=update)

    def estimated_objective(self, cfg: TrialConfig) -> float | None:
        """The objective at the analytic throughput bound (no queueing): optimistic, computed in microseconds, and
        ranked the same way as the simulated figure, so the search can start where it is likely lowest. None for a
        configuration the screen rejects or the catalog does not price."""
        if cfg.is_api or (cfg.hardware != "here" and not self.offered(cfg)):
            return None
        screened = self.screened(cfg)
        if isinstance(screened, TrialOutcome):
            return None
        bound = self._bounds.get(self.capacity_key(cfg))
        if not bound:
            return None
        lengths = self.lengths(cfg.model)
        tp = projected_throughput(bound, sum(lengths.prompt) / len(lengths.prompt),
                                  sum(lengths.output) / len(lengths.output), self.workload, cfg.label(),
                                  "analytic bound", 0.0)
        tp.weights_gb = screened[1].memory.weights_gb
        rows = cost_rows(tp, self.offers(cfg), self.workload.demand, self.fleet, (cfg.pricing,))
        if not rows:
            return None
        return min(self.objective_of(r) or math.inf for r in rows)

    def offers(self, cfg: TrialConfig) -> list:
        """The catalog offers hosting this placement (an accelerator's; within the study's providers and regions),
        looked up once per accelerator and count."""
        key = (cfg.hardware, cfg.devices)
        if key not in self._offered:
            p = self.spec.space.placements
            self._offered[key] = offers_for(self.catalog, cfg.hardware, cfg.devices, providers=p.providers,
                                            regions=p.regions)
        return self._offered[key]

    def offered(self, cfg: TrialConfig) -> bool:
        """Whether the catalog prices this placement under its pricing model."""
        return any(o.hourly(cfg.pricing) is not None for o in self.offers(cfg))

    def pricing_offered(self, hardware: str, devices: int) -> list[str]:
        """The study's pricing models under which the catalog prices `devices` x `hardware` (in the study's order):
        what the search space may pair with that placement. This machine is priced once, by the first listed."""
        pricing = self.spec.space.placements.pricing
        if hardware == "here":
            return [pricing[0]]
        offers = self.offers(TrialConfig(model="", engine="vllm", precision="", max_num_seqs=1, hardware=hardware,
                                         devices=devices))
        return [p for p in pricing if any(o.hourly(p) is not None for o in offers)]

    def lengths(self, model: str) -> Lengths:
        if model not in self._lengths:
            self._lengths[model] = workload_lengths(self.workload)
        return self._lengths[model]

    def screen(self, cfg: TrialConfig, projector: Projector) -> str | None:
        """A reason to reject without running, or None."""
        hw = projector.hardware
        if cfg.hardware != "here" and cfg.engine not in PROJECTED_ENGINES:  # the space's own rule (hardware_for)
            return "projection models continuous batching; the transformers engine batches statically"
        if cfg.hardware != "here" and cfg.precision == "fp8" and "fp8" not in hw.tflops:
            return f"fp8 needs fp8 tensor cores: {hw.name} has none"
        if cfg.hardware != "here" and cfg.kv_cache_dtype.startswith("fp8") and "fp8" not in hw.tflops:
            return f"an fp8 KV cache needs fp8 support: {hw.name} has none"
        if cfg.hardware == "here" and cfg.engine == "vllm" and cfg.precision not in CONCRETE_DTYPES:
            from infercost.engines.capabilities import capabilities

            verdict = (capabilities().get("engines", {}).get("vllm", {}).get("quantization") or {}).get(
                cfg.precision, "")
            if str(verdict).startswith("no"):
                return f"vLLM here cannot run {cfg.precision}: {verdict}"
        if not projector.memory.fits:
            return f"does not fit: {projector.memory.reason}"
        lengths = self.lengths(cfg.model)
        mean_in = sum(lengths.prompt) / len(lengths.prompt)
        mean_out = sum(lengths.output) / len(lengths.output)
        targets = self.workload.slo.targets()
        tpot_bound = min(targets.get("tpot_ms", {}).values(), default=math.inf) / 1e3
        ttft_bound = min(targets.get("ttft_ms", {}).values(), default=math.inf) / 1e3
        est = estimate(projector.step, projector.memory, mean_in, mean_out, cfg.max_num_seqs,
                       tpot_bound if math.isfinite(tpot_bound) else None)
        self._bounds[self.capacity_key(cfg)] = est.throughput_rps
        margin = 1 + projector.efficiency.expected_error  # reject only when the floor is over even at the error
        if est.tpot_floor_s > tpot_bound * margin:
            return f"TPOT floor {est.tpot_floor_s * 1e3:.0f} ms at batch 1 exceeds the SLO {tpot_bound * 1e3:g} ms"
        if est.ttft_floor_s > ttft_bound * margin:
            return f"TTFT floor {est.ttft_floor_s * 1e3:.0f} ms at zero load exceeds the SLO {ttft_bound * 1e3:g} ms"
        return None

    # ------------------------------------------------------------------ evaluation

    def measures(self, cfg: TrialConfig) -> bool:
        """Whether this configuration is measured (here, or on a cluster node with its accelerator) or projected."""
        return self.spec.mode in ("measure", "hybrid") and not cfg.is_api and (
            cfg.hardware == "here" or (self.measured_on is not None and self.measured_on(cfg)))

    @staticmethod
    def capacity_key(cfg: TrialConfig) -> str:
        """Capacity does not depend on how the hardware is paid for: one search serves every pricing model."""
        return cfg.model_copy(update={"pricing": "on_demand"}).key()

    def known_capacity(self, cfg: TrialConfig) -> bool:
        return self.capacity_key(cfg) in self._capacities

    def capacity_of(self, cfg: TrialConfig) -> CapacityResult | None:
        return self._capacities.get(self.capacity_key(cfg))

    def remember_capacity(self, cfg: TrialConfig, result: CapacityResult) -> None:
        """A capacity measured elsewhere (a cluster node), so the configuration's other pricing models reuse it."""
        self._capacities[self.capacity_key(cfg)] = result

    def screened(self, cfg: TrialConfig) -> TrialOutcome | tuple[Deployment, Projector]:
        """The rejected outcome of a configuration that cannot run, else its deployment and projector: what a
        driver checks before it sends a trial to another machine."""
        try:
            deployment = self.deployment(cfg)
            projector = self.projector(cfg, deployment)
        except InputError as exc:
            return TrialOutcome(config=cfg, status="rejected", reason=str(exc))
        reason = self.screen(cfg, projector)
        return TrialOutcome(config=cfg, status="rejected", reason=reason) if reason else (deployment, projector)

    def measured_deployment(self, cfg: TrialConfig, deployment: Deployment) -> Deployment:
        """What runs for a measured trial: the trial's deployment, or the stand-in on a node without the GPU. A
        tensor-parallel vLLM deployment on a node runs its workers as local processes on the GPUs Ray gave the trial
        (vLLM would otherwise see Ray and look for a placement group across the cluster)."""
        if cfg.hardware == "here":
            return deployment
        if self.standin is not None:
            return validate(deployment_adapter(), self.standin, source="the cluster stand-in deployment")
        args = getattr(deployment, "engine_args", None)
        if cfg.devices > 1 and isinstance(args, dict) and "distributed_executor_backend" not in args:
            return deployment.model_copy(update={"engine_args": {**args, "distributed_executor_backend": "mp"}})
        return deployment

    async def evaluate(self, cfg: TrialConfig) -> TrialOutcome:
        if cfg.is_api:
            try:
                return await self._evaluate_api(cfg)
            except InputError:
                raise
            except Exception as exc:  # a vendor that broke the measurement is this candidate's result
                return TrialOutcome(config=cfg, status="infeasible", kind="api",
                                    reason=redact_text(f"{type(exc).__name__}: {exc}")[:500])
        screened = self.screened(cfg)
        if isinstance(screened, TrialOutcome):
            return screened
        deployment, projector = screened
        measure = self.measures(cfg)
        capacity_key = self.capacity_key(cfg)
        if cfg.hardware != "here" and not self.offered(cfg):  # priced before anything is projected or measured
            return TrialOutcome(config=cfg, status="infeasible", kind="measured" if measure else "projected",
                                reason=f"no catalog offer with a {cfg.pricing} price for {cfg.hardware}")
        try:
            if capacity_key in self._capacities:
                result = self._capacities[capacity_key]
            elif measure and cfg.hardware != "here" and self.measured_elsewhere:
                raise RuntimeError(f"{cfg.label()} is measured on a cluster node, not by the driver")
            elif measure:
                result = await measure_capacity(self.workload, self.measured_deployment(cfg, deployment),
                                                self.store, self.spec.capacity, self.progress)
            else:
                result = await projector.capacity(self.workload, self.lengths(cfg.model),
                                                  self.projected_options(self._bounds.get(capacity_key)))
                if result.capacity_rps:
                    self._bands[capacity_key] = await capacity_band(projector, self.workload, self.lengths(cfg.model),
                                                                    self.projected_options(), result.capacity_rps)
        except InputError as exc:
            return TrialOutcome(config=cfg, status="infeasible", reason=str(exc))
        except Exception as exc:  # an engine crash mid-search is this configuration's result, not the study's
            return TrialOutcome(config=cfg, status="infeasible", reason=f"{type(exc).__name__}: {exc}"[:500])
        self._capacities[capacity_key] = result
        return await self._priced(cfg, deployment, projector, result, measure, self._bands.get(capacity_key))

    async def _priced(self, cfg: TrialConfig, deployment: Deployment, projector: Projector, result: CapacityResult,
                      measured: bool, band: tuple[float | None, float | None] | None = None) -> TrialOutcome:
        kind = "measured" if measured else "projected"
        base = dict(config=cfg, kind=kind, evidence=result.provenance.get("capacity_dir"),
                    expected_error=None if measured else projector.efficiency.expected_error)
        if result.capacity_rps is None:
            return TrialOutcome(**base, status="infeasible",
                                reason=result.reason or f"no load meets the SLO ({result.status})")
        best = result.best_probe()
        ttft = best.slo_observed.get("ttft_ms.p95") if best else None
        p = self.spec.space.placements
        if measured and cfg.hardware == "here":
            tp = throughput_from_capacity(result)
            offers = offers_for(self.catalog, "here", measured_on=tp.hardware, engine=tp.engine,
                                providers=p.providers, regions=p.regions)
        elif measured:  # measured on a cluster node with the accelerator: priced on that accelerator's offers
            tp = throughput_from_capacity(result)
            offers = self.offers(cfg)
        else:
            lengths = self.lengths(cfg.model)
            eff = projector.efficiency
            tp = projected_throughput(result.capacity_rps, sum(lengths.prompt) / len(lengths.prompt),
                                      sum(lengths.output) / len(lengths.output), self.workload, cfg.label(),
                                      eff.source, eff.expected_error, band or (None, None), confidence_of(projector))
            offers = self.offers(cfg)
        if tp.weights_gb is None:  # a measured replica's start-up is its own; the weights stand in where none was
            tp.weights_gb = projector.memory.weights_gb
        rows = cost_rows(tp, offers, self.workload.demand, self.fleet, (cfg.pricing,))
        if not rows:
            return TrialOutcome(**base, status="infeasible", capacity_rps=result.capacity_rps,
                                reason=f"no catalog offer with a {cfg.pricing} price for {cfg.hardware}")
        row = min(rows, key=lambda r: (self.objective_of(r), r.cost_per_1k_requests, r.provider, r.region, r.sku))
        objective = self.objective_of(row)
        low, high = self.objective_ends(row)
        outcome = TrialOutcome(**base, status="feasible", capacity_rps=result.capacity_rps, ttft_p95_ms=ttft,
                               capacity_low_rps=tp.capacity_low_rps, capacity_high_rps=tp.capacity_high_rps,
                               objective_low=low, objective_high=high,
                               confidence=tp.confidence,
                               slo_observed=dict(best.slo_observed) if best else {}, probes=len(result.probes),
                               requests_per_probe=result.requests_per_probe, cost=row, objective=objective)
        remote = measured and cfg.hardware != "here"
        if remote and self.measured_elsewhere:  # its node answered, and its answers came back with its records
            await self._quality(outcome, deployment, measured, cache_only=True)
        else:
            await self._quality(outcome, self.measured_deployment(cfg, deployment) if remote else deployment, measured)
        self._constraints(outcome)
        return outcome

    def wants_quality(self) -> bool:
        return bool(self.spec.constraints.quality and self.workload.quality is not None
                    and self.workload.quality.target is not None)

    def answering_engine(self, measured: bool, cache_only: bool = False):
        """The engine factory for a trial's answers. Answers depend on the model, precision and engine, not on
        where they run, so an endpoint declared in `quality_sources` answers for every placement of its model; a
        study that measures here generates the rest here (and caches them) for projected placements too; a
        projection-only study otherwise uses only cached answers of the same model and precision."""
        local = create_engine if not cache_only and (measured or self.spec.mode in ("measure", "hybrid")) \
            else no_engine

        def factory(deployment: Deployment):
            source = self.spec.quality_source(deployment.model, _precision(deployment))
            if source is not None and not isinstance(deployment, OpenAIDeployment):
                problem = self.endpoint_problem(source.base_url)
                if problem:
                    raise EndpointUnreachable(problem)
                return create_engine(source.endpoint())
            return local(deployment)

        return factory

    async def _quality(self, outcome: TrialOutcome, deployment: Deployment, measured: bool,
                       cache_only: bool = False) -> None:
        if not self.wants_quality():
            return
        if isinstance(deployment, OpenAIDeployment):  # a hosted API answers for itself, through its endpoint
            problem = self.endpoint_problem(deployment.base_url)
            if problem:
                outcome.quality_source = f"quality not measured: {problem}"
                return
        try:
            q = await evaluate_quality(self.workload, deployment, cache_dir=self.quality_dir,
                                       engine_factory=self.answering_engine(measured, cache_only))
        except QualityNotCached:
            outcome.quality_source = "quality not measured: no endpoint serves this model and precision, and no " \
                                     "cached answers"
            outcome.quality_settle_with = self.settle_quality_with(outcome.config, deployment)
            return
        except EndpointUnreachable as exc:
            outcome.quality_source = f"quality not measured: {exc}"
            return
        except Exception as exc:
            outcome.quality_source = " ".join(f"quality not measured: {type(exc).__name__}: {exc}".split())[:300]
            return
        outcome.quality_score = q.summary.mean_score
        outcome.quality_ci95 = q.summary.mean_score_ci95
        outcome.quality_met = q.summary.target_met
        outcome.quality_source = (("answers cached" if q.summary.cache_hit else "answers generated")
                                  + f" from {q.summary.answers_from} ({q.summary.evaluated}/{q.summary.prompts} "
                                    "prompts)")

    def settle_quality_with(self, cfg: TrialConfig, deployment: Deployment) -> str:
        """The command that measures this model's quality through an endpoint that serves it, into the study's
        answer cache, so the next `infercost optimize` of the study re-judges the trial."""
        sets = " ".join(f"--set {k}={v}" for k, v in cfg.deployment(self.spec.fixed).items()
                        if k in ("engine", "model", "dtype", "quantization", "kv_cache_dtype"))
        workload = Path(os.path.normpath(self.spec.resolve(self.spec.workload)))
        if workload.is_relative_to(Path.cwd()):
            workload = workload.relative_to(Path.cwd())
        return (f"infercost quality {workload} {sets} --endpoint http://HOST:PORT/v1 --served-model NAME "
                f"--cache-dir {self.quality_dir}")

    # ------------------------------------------------------------------ hosted APIs

    async def _evaluate_api(self, cfg: TrialConfig) -> TrialOutcome:
        """A hosted model: priced from the catalog's token prices at the workload's token counts (measured through
        the vendor's endpoint when it can be reached, else tokenised), with its rate limits as its capacity, and
        latency and quality measured through the endpoint when a key is given."""
        api = self.hosted(cfg)
        w = self.workload
        lengths = self.lengths(cfg.model)
        mean_in, mean_out = sum(lengths.prompt) / len(lengths.prompt), sum(lengths.output) / len(lengths.output)
        token_source = f"the workload's prompts ({lengths.source})"
        why_not = api.not_measurable() or self.endpoint_problem(api.deployment.base_url)
        base: dict[str, Any] = dict(config=cfg, kind="api", latency_measured=False,
                                    latency_source=f"not measured: {why_not}" if why_not else None)
        slo = None
        if why_not is None:
            try:
                m = await measure(w, api.deployment, self.store, run_name=f"{w.name}-{cfg.model.replace('/', '-')}-api")
            except InputError as exc:
                return TrialOutcome(**base, status="infeasible", reason=str(exc))
            base["evidence"] = str(m.run_dir)
            if m.summary is None or not m.summary.completed:
                base["latency_source"] = f"not measured: the run {m.status}: {m.reason or 'no request completed'}"
            else:
                s = m.summary
                observed = {f"{c.metric}.{c.stat}": c.observed for c in s.slo_checks}
                failed = next((c for c in s.slo_checks if not c.passed), None)
                slo = (failed is None, None if failed is None else
                       f"{failed.metric} {failed.stat} {'none' if failed.observed is None else f'{failed.observed:.4g}'}"
                       f" > {failed.bound:g}")
                base.update(latency_measured=True, slo_observed=observed, probes=1,
                            requests_per_probe=s.requests, ttft_p95_ms=observed.get("ttft_ms.p95"),
                            latency_source=f"measured through {redact_url(api.deployment.base_url)} at the "
                                           f"workload's traffic ({s.completed} of {s.requests} requests)")
                if s.mean_input_tokens and s.mean_output_tokens:  # the vendor's own counts (reasoning is output)
                    mean_in, mean_out = s.mean_input_tokens, s.mean_output_tokens
                    token_source = f"measured through the endpoint ({s.completed} requests)"
        limit, basis = api.limit_rps(mean_in + mean_out)
        met = _limit_met(base.get("evidence"))
        if met is not None and (limit is None or met < limit):  # the vendor refused below its published limit
            limit, basis = met, f"rate limit met while measuring: 429s at {met:.3g} accepted req/s"
        row = api_cost_row(api.price, w.name, w.tags.as_dict(), mean_in, mean_out, w.demand,
                           cached_share=api.candidate.cached_input_share, token_source=token_source)
        objective = self.objective_of(row)
        exact = objective if base["latency_measured"] else None  # list prices x measured tokens: no capacity band
        outcome = TrialOutcome(**base, status="feasible", capacity_rps=limit, capacity_basis=basis, cost=row,
                               objective=objective, objective_low=exact, objective_high=exact)
        if why_not is None:  # judged even when its latency failed: build or buy shows every reason an API lost
            await self._quality(outcome, api.deployment, measured=True)
        elif self.wants_quality():
            outcome.quality_source = f"quality not measured: {why_not}"
        self._constraints(outcome)
        if slo is not None and not slo[0]:
            also = f"; also {outcome.reason}" if outcome.reason else ""
            outcome.status, outcome.reason = "infeasible", f"SLO not met through the API: {slo[1]}{also}"
            outcome.binding = "slo"
        return outcome

    # ------------------------------------------------------------------ re-judging quality

    @staticmethod
    def quality_unverified(o: TrialOutcome) -> bool:
        """Infeasible only because nothing could check its quality (so new answers could change the verdict)."""
        return (o.kind in ("measured", "projected") and o.cost is not None and o.quality_met is None
                and o.constraints.get("quality", 0) > 0)

    def quality_available(self, cfg: TrialConfig) -> bool:
        """Whether a trial whose quality was not verified could be judged now: an endpoint is declared for its model
        and precision, or its answers are in the study's cache (e.g. from `infercost quality --endpoint`)."""
        try:
            deployment = self.deployment(cfg)
            source = self.spec.quality_source(deployment.model, _precision(deployment))
            if source is not None and self.endpoint_problem(source.base_url) is None:
                return True
            asyncio.run(evaluate_quality(self.workload, deployment, cache_dir=self.quality_dir,
                                         engine_factory=no_engine))
            return True
        except Exception:
            return False

    async def rejudged(self, o: TrialOutcome) -> TrialOutcome:
        """`o` judged again on quality, with everything else as measured or projected."""
        fresh = o.model_copy(update=dict(status="feasible", reason=None, binding=None, constraints={},
                                         quality_source=None, quality_settle_with=None))
        await self._quality(fresh, self.deployment(o.config), measured=o.kind == "measured")
        self._constraints(fresh)
        return fresh

    def _constraints(self, o: TrialOutcome) -> None:
        c = {}
        wants_quality = self.wants_quality()
        if o.kind == "api":
            if not o.latency_measured:
                c["slo"] = 1.0  # an SLO nobody measured is not met
            peak = peak_rps(self.workload.demand)
            if peak is not None and o.capacity_rps is not None:
                c["rate_limit"] = peak - o.capacity_rps
        if o.quality_met is not None:
            c["quality"] = 0.0 if o.quality_met else 1.0
        elif wants_quality:  # a configuration is not recommended on a quality bar nobody checked
            c["quality"] = 1.0
        pessimistic = self.spec.constraints.decision == "pessimistic"
        if self.spec.constraints.min_capacity_rps:
            capacity = (o.capacity_low_rps if pessimistic and o.capacity_low_rps is not None else o.capacity_rps)
            c["min_capacity"] = self.spec.constraints.min_capacity_rps - (capacity or 0)
        budget = self.workload.budget
        if self.spec.constraints.budget and budget is not None and o.cost and o.cost.monthly_cost is not None:
            monthly = (o.cost.monthly_cost_high if pessimistic and o.cost.monthly_cost_high is not None
                       else o.cost.monthly_cost)
            c["budget"] = monthly - budget.monthly
        o.constraints = c
        violated = [k for k, v in c.items() if v > 0]
        if violated:
            notes = []
            if "slo" in violated and o.kind == "api":
                notes.append(f"latency {o.latency_source}")
            if "quality" in violated and o.quality_met is None:
                unmeasured = o.quality_source or "quality not measured"
                if notes and notes[0] == "latency " + unmeasured.removeprefix("quality "):
                    notes[0] = "latency and " + unmeasured  # one reason for both: say it once
                else:
                    notes.append(unmeasured)
            if "rate_limit" in violated:
                notes.append(f"the peak of {peak_rps(self.workload.demand):.3g} req/s is above the {o.capacity_basis}: "
                             f"{o.capacity_rps:.3g} req/s")
            o.status = "infeasible"
            o.reason = "violates " + ", ".join(violated) + (f" ({'; '.join(notes)})" if notes else "")
            o.binding = violated[0]
        elif c:
            o.binding = max(c, key=lambda k: c[k])  # the tightest constraint (closest to its limit)
        else:
            o.binding = "SLO (capacity is where it stops holding)"


class EndpointUnreachable(Exception):
    pass


def _limit_met(run_dir: str | None) -> float | None:
    """The accepted rate at which the vendor answered 429 during the measurement (the engine's record)."""
    path = Path(run_dir) / "manifest.json" if run_dir else None
    if path is None or not path.is_file():
        return None
    limited = (json.loads(path.read_text()).get("engine") or {}).get("rate_limited") or {}
    return limited.get("min_accepted_rps_at_429") or None


def _precision(deployment: Deployment) -> str:
    quantization = getattr(deployment, "quantization", None)
    return quantization if quantization not in (None, "none") else str(getattr(deployment, "dtype", ""))


def evaluate_sync(evaluator: Evaluator, cfg: TrialConfig) -> TrialOutcome:
    return asyncio.run(evaluator.evaluate(cfg))
