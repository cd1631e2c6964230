"""Quality evaluation: greedy answers to the workload's prompts, scored against references or against a baseline
deployment's answers, independent of load. Answers are cached per answer key; an evaluation that can no longer
reach its target stops early."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from pydantic import BaseModel

from infercost.engines import Chunk, Engine, RequestFailed, create_engine
from infercost.errors import InputError, RunFailed
from infercost.quality.cache import THIS_MACHINE, AnswerCache, answer_key
from infercost.quality.scorers import get_scorer
from infercost.spec.loader import deployment_adapter, read_yaml, validate
from infercost.spec.quality import QualitySpec, ScorerSpec
from infercost.spec.workload import Workload
from infercost.store import RunStore
from infercost.store.manifest import run_manifest
from infercost.workload import build_requests
from infercost.workload.requests import Request

if TYPE_CHECKING:
    from infercost.spec.deployment import Deployment

EngineFactory = Callable[["Deployment"], Engine]


class PromptScore(BaseModel):
    id: str
    prompt: str
    answer: str
    reference: str | None
    score: float
    passed: bool
    parts: dict[str, float]


class QualitySummary(BaseModel):
    deployment: str
    answer_key: str
    prompts: int  # in the quality set
    evaluated: int
    mean_score: float | None
    mean_score_ci95: tuple[float, float] | None
    pass_rate: float | None
    pass_rate_ci95: tuple[float, float] | None
    threshold: float
    relative_to: str | None  # baseline deployment label when scored by agreement
    target: dict[str, Any] | None
    target_met: bool | None
    binding: str | None  # which part of the target failed
    stopped_early: bool
    cache_hit: bool  # every answer came from the cache: no engine was started
    answers_from: str = THIS_MACHINE  # where the answers were generated: this machine, or an endpoint's URL
    engine_startup_s: float | None
    failing: list[PromptScore]


@dataclass
class QualityResult:
    summary: QualitySummary
    scores: list[PromptScore]
    run_dir: Path | None = None
    answers: dict[str, str] = field(default_factory=dict)


def bootstrap_ci(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of the mean."""
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n, values.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def quality_requests(workload: Workload, spec: QualitySpec, relative: bool) -> list[Request]:
    """Greedy copies of the prompts that can be scored (with a reference, unless judged against a baseline),
    sampled to a fixed size with a seed."""
    requests = build_requests(workload)
    if not relative:
        requests = [r for r in requests if r.reference is not None or r.must_contain]
        if not requests:
            raise InputError("no prompt has a reference answer to score against", source=workload.name,
                             field="quality")
    if spec.sample_size and spec.sample_size < len(requests):
        picks = np.sort(np.random.default_rng(spec.sample_seed).choice(len(requests), spec.sample_size, replace=False))
        requests = [requests[i] for i in picks]
    max_tokens = spec.max_tokens or workload.sampling.max_tokens
    return [replace(r, temperature=0.0, top_p=1.0, ignore_eos=False, seed=None, max_tokens=max_tokens)
            for r in requests]


def _identity(requests: list[Request]) -> list[dict[str, Any]]:
    return [{"id": r.id, "prompt": r.prompt, "messages": r.messages} for r in requests]


def score_answer(answer: str, request: Request, scorers: list[ScorerSpec], reference: str | None) -> dict[str, float]:
    parts = {}
    for s in scorers:
        params = dict(s.params)
        if s.name == "contains" and "strings" not in params and request.must_contain and reference == request.reference:
            params["strings"] = request.must_contain
        parts[s.name] = float(get_scorer(s.name).fn(answer, reference, **params))
    return parts


def _weighted(parts: dict[str, float], scorers: list[ScorerSpec]) -> float:
    total = sum(s.weight for s in scorers)
    return sum(parts[s.name] * s.weight for s in scorers) / total


def _unreachable(scores: list[float], passes: int, n: int, spec: QualitySpec, target_mean: float | None) -> bool:
    """True when the target cannot be met even if every remaining prompt scored 1."""
    t = spec.target
    remaining = n - len(scores)
    if target_mean is not None and (sum(scores) + remaining) / n < target_mean:
        return True
    return t is not None and t.pass_rate is not None and (passes + remaining) / n < t.pass_rate


async def _generate(engine: Engine, batch: list[Request]) -> tuple[dict[str, str], dict[str, str]]:
    """(answers, failures): a request the engine failed has no answer, rather than an empty one that would be scored
    and cached as if the model had said nothing."""
    async def one(r: Request) -> tuple[str, str | None, str | None]:
        text = []
        try:
            async for event in engine.generate(r):
                if isinstance(event, Chunk):
                    text.append(event.text)
        except RequestFailed as exc:
            return r.id, None, str(exc)
        return r.id, "".join(text), None

    results = await asyncio.gather(*(one(r) for r in batch))
    return ({i: a for i, a, _ in results if a is not None}, {i: e for i, a, e in results if e is not None})


def load_baseline(workload: Workload, baseline: str | dict[str, Any]) -> Deployment:
    if isinstance(baseline, str):
        path = workload.resolve(baseline)
        return validate(deployment_adapter(), read_yaml(path), str(path))
    return validate(deployment_adapter(), baseline, f"{workload.name}: quality.target.baseline")


class QualityRunFailed(RunFailed):
    """The engine failed requests while answering: quality cannot be scored on the answers that came back."""


async def answers_for(
    deployment: Deployment,
    requests: list[Request],
    cache: AnswerCache,
    engine_factory: EngineFactory = create_engine,
    on_batch: Callable[[dict[str, str]], bool] | None = None,
    batch_size: int = 16,
) -> tuple[dict[str, str], bool, float | None]:
    """Answers for `requests`, from the cache where there, else generated (and cached, with where the engine
    generated them) in batches. `on_batch` gets the answers so far and returns True to stop early. Returns
    (answers, all_from_cache, engine start-up seconds)."""
    key, ident = answer_key(deployment, _identity(requests), requests[0].max_tokens)
    answers = dict(cache.get(key) or {})  # the key covers exactly this prompt set
    missing = [r for r in requests if r.id not in answers]
    if not missing or (on_batch and on_batch(answers)):
        return answers, not missing, None
    engine = engine_factory(deployment)
    engine.plan_memory(requests)  # sized for the whole prompt set, so a later batch never outgrows it
    t = time.perf_counter()
    await engine.start()
    startup = time.perf_counter() - t
    try:
        for i in range(0, len(missing), batch_size):
            got, failed = await _generate(engine, missing[i:i + batch_size])
            answers.update(got)
            # the answers that came back are kept; the failed ones are not cached
            cache.put(key, ident, answers, engine.answer_source())
            if failed:
                first = next(iter(failed.values()))
                raise QualityRunFailed(f"{len(failed)} of {len(missing[i:i + batch_size])} answers failed in a batch "
                                       f"of {deployment.label()}: {first}")
            if on_batch and on_batch(answers):
                break
    finally:
        await engine.stop()
    return answers, False, startup


async def evaluate(
    workload: Workload,
    deployment: Deployment,
    cache_dir: str | Path = "results/quality-cache",
    store: RunStore | None = None,
    engine_factory: EngineFactory = create_engine,
) -> QualityResult:
    """`engine_factory` makes the engine that answers for a deployment (by default the deployment's own engine; an
    endpoint serving the same model can stand in). Where the answers came from is kept with them."""
    spec = workload.quality or QualitySpec()
    target = spec.target
    relative = target is not None and target.baseline is not None
    requests = quality_requests(workload, spec, relative)
    by_id = {r.id: r for r in requests}
    cache = AnswerCache(cache_dir)

    references: dict[str, str | None] = {r.id: r.reference for r in requests}
    scorers = spec.scorers
    baseline_label = None
    if relative:
        baseline = load_baseline(workload, target.baseline)
        baseline_label = baseline.label()
        references, _, _ = await answers_for(baseline, requests, cache, engine_factory, batch_size=spec.batch_size)
        scorers = [target.agreement_scorer]
    target_mean = target.agreement if relative else (target.mean_score if target else None)
    threshold = target.threshold if target else 0.5

    scored: dict[str, PromptScore] = {}

    def score_new(answers: dict[str, str]) -> bool:
        for rid, answer in answers.items():
            if rid not in scored:
                r = by_id[rid]
                parts = score_answer(answer, r, scorers, references[rid])
                score = _weighted(parts, scorers)
                scored[rid] = PromptScore(id=rid, prompt=r.text(), answer=answer, reference=references[rid],
                                          score=score, passed=score >= threshold, parts=parts)
        if not spec.early_stop or target is None:
            return False
        values = [s.score for s in scored.values()]
        return _unreachable(values, sum(s.passed for s in scored.values()), len(requests), spec, target_mean)

    answers, cache_hit, startup = await answers_for(deployment, requests, cache, engine_factory, score_new,
                                                    spec.batch_size)
    score_new(answers)
    ordered = [scored[r.id] for r in requests if r.id in scored]
    values = np.array([s.score for s in ordered])
    passes = np.array([float(s.passed) for s in ordered])
    stopped_early = len(ordered) < len(requests)

    met, binding = None, None
    if target is not None:
        checks = []
        if target_mean is not None:
            checks.append(("agreement" if relative else "mean_score", target_mean,
                           float(values.sum() / len(requests)) if stopped_early else float(values.mean())))
        if target.pass_rate is not None:
            checks.append(("pass_rate", target.pass_rate,
                           float(passes.sum() / len(requests)) if stopped_early else float(passes.mean())))
        failed = [name for name, bound, observed in checks if observed < bound]
        met = not failed and not stopped_early
        binding = ", ".join(failed) or None

    key, _ = answer_key(deployment, _identity(requests), requests[0].max_tokens)
    answers_from = cache.source(key) or THIS_MACHINE
    summary = QualitySummary(
        deployment=deployment.label(),
        answer_key=key,
        prompts=len(requests),
        evaluated=len(ordered),
        mean_score=float(values.mean()) if values.size else None,
        mean_score_ci95=bootstrap_ci(values),
        pass_rate=float(passes.mean()) if passes.size else None,
        pass_rate_ci95=bootstrap_ci(passes),
        threshold=threshold,
        relative_to=baseline_label,
        target=target.model_dump(mode="json") if target else None,
        target_met=met,
        binding=binding,
        stopped_early=stopped_early,
        cache_hit=cache_hit,
        answers_from=answers_from,
        engine_startup_s=startup,
        failing=sorted((s for s in ordered if not s.passed), key=lambda s: s.score),
    )
    result = QualityResult(summary, ordered, answers=answers)
    if store is not None:
        result.run_dir = _store(store, workload, deployment, result)
    return result


def _store(store: RunStore, workload: Workload, deployment: Deployment, result: QualityResult) -> Path:
    writer = store.new_run(f"quality-{workload.name}-{deployment.label()}",
                           run_manifest("quality", workload, deployment), records="quality")
    for s in result.scores:
        writer.add(s.model_dump(mode="json"))
    writer.finish("completed", result.summary.model_dump(mode="json"))
    return writer.dir


def evaluate_sync(*args: Any, **kwargs: Any) -> QualityResult:
    return asyncio.run(evaluate(*args, **kwargs))
