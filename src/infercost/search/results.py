"""What a study found: the trials as a pandas table, the best configuration (or Pareto set), its savings against
the baseline, and the rejected configurations with their reasons."""

from __future__ import annotations

from typing import Any, ClassVar

import optuna
import pandas as pd
from pydantic import ConfigDict, Field

from infercost.errors import InputError
from infercost.search.evaluate import TrialOutcome
from infercost.search.recommendation import Lost, Record
from infercost.search.space import TrialConfig
from infercost.search.spec import StudySpec
from infercost.search.study import answered_from_study, best, outcomes
from infercost.spec.deployment import TransformersDeployment, VllmDeployment
from infercost.spec.workload import Workload

_DEPLOYMENTS = {"vllm": VllmDeployment, "transformers": TransformersDeployment}


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per evaluated configuration (proposals answered from the study are not trials of it)."""
    rows = []
    for t, o in outcomes(study):
        c = o.config
        rows.append({
            "trial": t.number, "status": o.status, "kind": o.kind, "model": c.model, "engine": c.engine,
            "precision": c.precision, "max_num_seqs": c.max_num_seqs, "prefix_caching": c.enable_prefix_caching,
            "kv_cache_dtype": c.kv_cache_dtype, "hardware": c.hardware, "devices": c.devices, "pricing": c.pricing,
            "capacity_rps": o.capacity_rps, "cost_per_1k": o.cost.cost_per_1k_requests if o.cost else None,
            "monthly_cost": o.cost.monthly_cost if o.cost else None,
            "offer": f"{o.cost.provider} {o.cost.region} {o.cost.sku}" if o.cost else None,
            "ttft_p95_ms": o.ttft_p95_ms, "quality": o.quality_score, "quality_met": o.quality_met,
            "reason": o.reason, "reused_from": t.user_attrs.get("reused_from"), "evidence": o.evidence,
            "node": _node(o.node), "dispatch": o.dispatch,
        })
    return pd.DataFrame(rows)


def _node(node: dict[str, Any] | None) -> str | None:
    """A measured trial's node as a table shows it: host, Ray node id and the accelerator it was placed by."""
    if not node:
        return None
    resource = (node.get("resource") or "").removeprefix("accelerator_type:")
    return f"{node.get('host')}/{(node.get('node_id') or '?')[:8]} {resource}".strip() + (
        " (stand-in)" if node.get("standin") else "")


def baseline_config(baseline: Any) -> TrialConfig:
    """Today's deployment as a trial configuration. A field the baseline leaves out takes its engine's default from
    the deployment model, so the trial is the deployment that file would run."""
    d = baseline.deployment
    engine = d.get("engine", "vllm")
    if engine not in _DEPLOYMENTS:
        raise InputError(f"{engine!r} cannot be a baseline: the search runs {' and '.join(_DEPLOYMENTS)}",
                         field="baseline.deployment.engine")
    defaults = _DEPLOYMENTS[engine].model_fields
    precision = d.get("quantization") or d.get("dtype") or ("float32" if engine == "vllm" else "none")
    if engine == "transformers":
        precision = d.get("quantization") or "none"
    return TrialConfig(model=d["model"], engine=engine, precision=precision,
                       max_num_seqs=int(d.get("max_num_seqs", defaults["max_num_seqs"].default)),
                       max_num_batched_tokens=d.get("max_num_batched_tokens"),
                       enable_prefix_caching=bool(d.get("enable_prefix_caching",
                                                        defaults["enable_prefix_caching"].default)),
                       kv_cache_dtype=d.get("kv_cache_dtype", "auto"), hardware=baseline.hardware,
                       devices=baseline.devices, pricing=baseline.pricing)


def summary(study: optuna.Study, quality_target: bool = False) -> dict[str, Any]:
    """`quality_target`: the workload has one, so a saving is only claimed for a winner whose quality was checked."""
    chosen = best(study)
    base = study.user_attrs.get("baseline")
    base_o = TrialOutcome.model_validate(base) if base else None
    all_o = outcomes(study)
    out: dict[str, Any] = {
        "study": study.study_name, "trials": len(all_o), "answered_from_study": answered_from_study(study),
        "feasible": sum(o.status == "feasible" for _, o in all_o),
        "rejected": [{"trial": t.number, "config": o.config.label(), "status": o.status, "reason": o.reason}
                     for t, o in all_o if o.status != "feasible"],
        "best": [], "baseline": base,
    }
    for t, o in chosen:
        entry = {"trial": t.number, "config": o.config.label(), "outcome": o.model_dump(mode="json")}
        if base_o and base_o.cost and o.cost and base_o.objective:
            if quality_target and o.quality_met is not True:
                entry["savings_withheld"] = "its quality was not checked against the workload's target"
            else:
                entry["savings"] = 1 - o.objective / base_o.objective
        out["best"].append(entry)
    return out


class BestTrial(Record):
    omit_when_none: ClassVar[frozenset[str]] = frozenset({"savings", "savings_withheld"})

    trial: int
    config: str
    outcome: TrialOutcome
    savings: float | None = None  # against the baseline's cost, as a share
    savings_withheld: str | None = None  # why no saving is claimed


class StudyResult(Record):
    """What `optimize` found, typed. `best` is the cheapest feasible trial (or the feasible Pareto set of a
    multi-objective study), empty when nothing met the targets; `rejected` says why each other trial failed."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"report"})
    model_config = ConfigDict(arbitrary_types_allowed=True)

    study: str
    trials: int  # configurations evaluated
    answered_from_study: int = 0  # proposals of an evaluated configuration, answered with its outcome
    feasible: int
    rejected: list[Lost]
    best: list[BestTrial]
    baseline: dict[str, Any] | None = None  # the baseline's TrialOutcome as stored with the study
    storage: str
    elapsed_s: float | None = None
    report: dict[str, str] | None = None  # paths of the written report, by kind
    optuna_study: optuna.Study = Field(exclude=True)
    spec: StudySpec | None = Field(default=None, exclude=True)
    workload: Workload | None = Field(default=None, exclude=True)
    results_dir: str | None = Field(default=None, exclude=True)

    @property
    def winner(self) -> TrialOutcome | None:
        return self.best[0].outcome if self.best else None

    def trials_frame(self) -> pd.DataFrame:
        return trials_frame(self.optuna_study)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def of(cls, study: optuna.Study, storage: str, elapsed_s: float | None = None, **context: Any) -> "StudyResult":
        """`context`: the spec, workload and results_dir it ran with, so it can be recommended on from Python."""
        workload = context.get("workload")
        target = bool(workload is not None and workload.quality is not None and workload.quality.target is not None)
        return cls(**summary(study, target), storage=storage, elapsed_s=elapsed_s, optuna_study=study, **context)
