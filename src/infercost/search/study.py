"""The Optuna study. A trial is one configuration: sampled, evaluated (see `evaluate`), and stored with its whole
outcome in `user_attrs`. Each trial sets its summed constraint violation (Optuna's `constraints_func` before
Optuna 5), so TPE and NSGA-II steer towards feasible configurations. Screened-out configurations are pruned with
their reason. The budget buys distinct evaluations: a proposal of a configuration evaluated before is answered from
the study (recorded for the sampler, not counted, not shown as a trial), and a sampler that keeps proposing evaluated
configurations is handed an unevaluated one. Storage is any SQLAlchemy URL (a SQLite file by default), so several
workers can share one study and an interrupted one resumes where it stopped."""

from __future__ import annotations

import asyncio
import json
import random
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import optuna
import sqlalchemy
from optuna.distributions import IntDistribution
from optuna.samplers import NSGAIISampler, RandomSampler, TPESampler
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY as CONSTRAINTS_KEY
from optuna.trial import TrialState

from infercost.errors import InputError
from infercost.search.evaluate import Evaluator, TrialOutcome, rank
from infercost.search.samplers import GRID_PARAM, ExhaustiveSampler, taken_indices
from infercost.search.space import Offered, TrialConfig, enumerate_space, params_for, suggest
from infercost.search.spec import StudySpec
from infercost.search.warm_start import ranked, warm_start

HEARTBEAT_S = 2
PENALTY = 1e9  # objective of a configuration with no capacity: worse than any price, still comparable
# Proposals in a row answered from the study before an unevaluated configuration is queued: TPE on a small or
# well-explored space can propose the same few configurations indefinitely, and they no longer use the budget.
STALL = 10
POLL_S = 0.25  # how often a trial waiting for another one evaluating its configuration looks at the storage
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def default_storage(results_dir: str | Path, spec: StudySpec) -> str:
    path = Path(results_dir) / "studies" / f"{spec.name}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


# Workers started together on a new database race to create Optuna's tables and stamp its schema version; the
# losers fail on rows or tables the winner just made. Each retry finds more of them made, so a few suffice.
CREATION_ATTEMPTS = 12
_RACE_WORDS = ("already exists", "duplicate", "unique constraint", "locked", "deadlock", "could not serialize")


def _creation_race(exc: BaseException) -> bool:
    """Whether `exc` is another worker creating the same storage at the same moment (then trying again finds
    what it made), rather than a storage that cannot be opened at all."""
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    if isinstance(cause, sqlalchemy.exc.IntegrityError):
        return True
    if isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError)):
        return any(word in str(cause).lower() for word in _RACE_WORDS)
    return False


def storage_for(url: str) -> optuna.storages.BaseStorage:
    """RDB storage with a heartbeat, so a trial whose worker died (SIGKILL, lost node) is marked failed and its
    configuration re-queued by whoever resumes the study. Safe when several workers create it at once (see
    CREATION_ATTEMPTS); a storage that cannot be opened is one line naming it, with the password hidden."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(1, CREATION_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=3 * HEARTBEAT_S, engine_kwargs=engine_kwargs,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if attempt < CREATION_ATTEMPTS and _creation_race(exc):
                time.sleep(random.uniform(0.02, 0.1) * attempt)  # jittered: the racers do not collide again
                continue
            raise _unopenable(url, exc) from None
        except ImportError as exc:  # no driver for the URL's database
            raise _unopenable(url, exc) from None
    raise AssertionError("unreachable")


def _unopenable(url: str, exc: BaseException) -> InputError:
    try:
        shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        shown = "the storage URL"
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ else exc
    detail = " ".join(str(getattr(cause, "orig", None) or cause).split())[:300]
    return InputError(f"cannot open the study storage ({type(cause).__name__}: {detail}): expected a SQLAlchemy "
                      "URL of a database this machine can reach, e.g. sqlite:///studies.db or "
                      "postgresql+psycopg2://HOST/DB", source=shown)


# Optuna 5 reads constraints that each trial sets (TrialSteps.finish); earlier versions ask a constraints_func.
SET_CONSTRAINT = hasattr(optuna.Trial, "set_constraint")


def _sampler(spec: StudySpec, space: list[TrialConfig]):
    constraints = {} if SET_CONSTRAINT else {"constraints_func": constraints_of}
    if spec.sampler == "random":
        return RandomSampler(seed=spec.seed)
    if spec.sampler == "grid":
        return ExhaustiveSampler(len(space), seed=spec.seed)
    if spec.sampler == "nsga2":
        return NSGAIISampler(seed=spec.seed, **constraints)
    return TPESampler(seed=spec.seed, multivariate=True, group=True,
                      n_startup_trials=min(10, max(3, spec.n_trials // 5)), **constraints)


def constraints_of(trial: optuna.trial.FrozenTrial | dict[str, Any]) -> list[float]:
    """From a trial, or the user attributes it is stored with."""
    attrs = trial if isinstance(trial, dict) else trial.user_attrs
    c = attrs.get("constraints") or {}
    feasible = attrs.get("status") == "feasible"
    return [0.0 if feasible else 1.0, *[float(v) for _, v in sorted(c.items())][:3]] + [0.0] * (3 - min(3, len(c)))


def summed_violation(values: list[float]) -> float:
    """The violated constraints' sum, or (all met) the closest to its limit: feasible exactly when <= 0."""
    positive = [v for v in values if v > 0]
    return sum(positive) if positive else max(values)


def open_study(spec: StudySpec, storage: str, study_name: str | None = None,
               offered: Offered | None = None) -> optuna.Study:
    """`offered`: the catalog's pricing models per placement (the evaluator's `pricing_offered`), so the
    exhaustive sampler orders the space the trials draw from."""
    space = enumerate_space(spec, offered) if spec.sampler == "grid" else []
    directions = ["minimize", "minimize", "maximize"] if spec.multi_objective else ["minimize"]
    study = optuna.create_study(study_name=study_name or spec.name, storage=storage_for(storage),
                                sampler=_sampler(spec, space), directions=directions, load_if_exists=True)
    study.set_user_attr("spec", json.loads(spec.model_dump_json()))
    return study


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]


def is_repeat(trial: optuna.trial.FrozenTrial) -> bool:
    """A proposal of a configuration the study had evaluated, answered with that trial's outcome: kept so the
    sampler sees what it proposed, but no evaluation: it uses no budget and is not one of the study's trials. (A
    trial re-judged on quality is a deliberate new evaluation; one reusing the baseline holds its configuration.)"""
    reused = trial.user_attrs.get("reused_from")
    return isinstance(reused, int) and not trial.user_attrs.get("quality_rejudged")


def evaluated_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The finished trials that count: what the budget bought."""
    return [t for t in finished_trials(study) if not is_repeat(t)]


def answered_from_study(study: optuna.Study) -> int:
    """Proposals the study answered from an earlier evaluation."""
    return sum(is_repeat(t) for t in finished_trials(study))


def _recover_stale(study: optuna.Study) -> None:
    """Trials left RUNNING by a dead worker (no heartbeat for 3 intervals) are failed and their configuration queued
    again (RetryHeartbeatStaleTrialCallback); Optuna also checks this before each new trial. Optuna skips a trial
    whose worker died before its first heartbeat; those are failed here once they are older than the grace period."""
    optuna.storages.fail_stale_trials(study)
    for trial_id, params in _dead_before_first_heartbeat(study):
        try:
            study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        except Exception:  # another worker got there first
            continue
        if params:
            study.enqueue_trial(params, skip_if_exists=True)


def _dead_before_first_heartbeat(study: optuna.Study) -> list[tuple[int, dict]]:
    storage = getattr(study._storage, "_backend", study._storage)  # Optuna wraps RDB storage in a cache
    if not isinstance(storage, optuna.storages.RDBStorage):
        return []
    try:  # Optuna's own tables: the public API does not say whether a trial has a heartbeat
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:
        return []
    grace = timedelta(seconds=storage.grace_period or 2 * HEARTBEAT_S)
    now = datetime.now()  # trials' start times are the workers' local clocks
    out = []
    with _create_scoped_session(storage.scoped_session) as session:
        running = (session.query(models.TrialModel).filter(models.TrialModel.state == TrialState.RUNNING)
                   .filter(models.TrialModel.study_id == study._study_id).all())
        for t in running:
            if not t.heartbeats and t.datetime_start is not None and now - t.datetime_start > grace:
                out.append(t.trial_id)
    return [(tid, storage.get_trial(tid).params) for tid in out]


@dataclass
class Plan:
    """What a trial does with its configuration: evaluate it (`reuse` None), take an earlier outcome (`repeat`: one
    of the study's own, so no evaluation; else the baseline's), or judge one again on quality (`rejudge`).
    `running`: the id of an earlier trial evaluating it now, whose outcome to wait for."""

    cfg: TrialConfig
    reuse: TrialOutcome | None = None
    rejudge: bool = False
    repeat: bool = False
    running: int | None = None


class TrialSteps:
    """What every trial does around its evaluation, wherever that runs (this process, or a cluster node): choose the
    configuration, answer it from the study if it was evaluated, and store the outcome and its constraints with the
    trial."""

    def __init__(self, study: optuna.Study, spec: StudySpec, evaluator: Evaluator,
                 on_trial: Callable[[optuna.trial.FrozenTrial, TrialOutcome, bool], None] | None = None):
        self.study, self.spec, self.evaluator, self.on_trial = study, spec, evaluator, on_trial
        self.offered: Offered = evaluator.pricing_offered
        self.grid = enumerate_space(spec, self.offered) if spec.sampler == "grid" else None
        self.requeued: set[str] = set()
        self.in_a_row = 0  # proposals answered from the study since the last evaluation
        self.exhausted = False  # every configuration of the space is evaluated, running or queued
        self._unevaluated: list[TrialConfig] | None = None

    def prepare(self, trial: optuna.Trial) -> Plan:
        """The trial's configuration and what to do with it."""
        grid = self.grid
        cfg = grid[trial.suggest_int(GRID_PARAM, 0, len(grid) - 1)] if grid else suggest(trial, self.spec,
                                                                                          self.offered)
        trial.set_user_attr("config_key", cfg.key())
        return self.answer(trial, cfg)

    def answer(self, trial: optuna.Trial, cfg: TrialConfig) -> Plan:
        """The latest outcome of this configuration (a trial re-judged on quality supersedes the one before), an
        earlier trial evaluating it now, or nothing: then it is evaluated."""
        key = cfg.key()
        trials = self.study.get_trials(deepcopy=False)
        earlier = next((t for t in reversed(trials) if t.state in FINISHED and t.number != trial.number
                        and t.user_attrs.get("config_key") == key and "outcome" in t.user_attrs
                        and not is_repeat(t)), None)
        if earlier is not None:
            trial.set_user_attr("reused_from", earlier.number)
            outcome = TrialOutcome.model_validate(earlier.user_attrs["outcome"])
            if key in self.requeued and Evaluator.quality_unverified(outcome):
                self.requeued.discard(key)  # judged once: a later proposal of it is a repeat
                trial.set_user_attr("quality_rejudged", True)
                self.in_a_row = 0
                return Plan(cfg, outcome, rejudge=True)
            self._repeated()
            return Plan(cfg, outcome, repeat=True)
        running = next((t for t in trials if t.state == TrialState.RUNNING and t.number < trial.number
                        and t.user_attrs.get("config_key") == key), None)
        if running is not None:  # the earlier trial evaluates it; the later waits (so two never wait on each other)
            return Plan(cfg, running=running._trial_id)
        self.in_a_row = 0
        baseline = self.study.user_attrs.get("baseline")
        if baseline is not None and TrialOutcome.model_validate(baseline).config.key() == key:
            trial.set_user_attr("reused_from", "baseline")  # today's plan is in the space: measured once
            return Plan(cfg, TrialOutcome.model_validate(baseline))
        return Plan(cfg)

    def _repeated(self) -> None:
        self.in_a_row += 1
        if self.in_a_row >= STALL:
            self.in_a_row = 0
            self.queue_unevaluated()

    def queue_unevaluated(self) -> None:
        """Queues the next configuration no trial holds: the closed-form ranking's first, else a seeded-random one
        (configurations the screen rejects and the APIs are not ranked). Sets `exhausted` when none is left."""
        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return  # the queue is asked first anyway
        held = {t.user_attrs.get("config_key") for t in trials if t.state != TrialState.FAIL}
        if self._unevaluated is None:
            space = self.grid if self.grid is not None else enumerate_space(self.spec, self.offered)
            first = [cfg for _, cfg in ranked(self.spec, self.evaluator, space)]
            ranked_keys = {cfg.key() for cfg in first}
            rest = [cfg for cfg in space if cfg.key() not in ranked_keys]
            random.Random(self.spec.seed).shuffle(rest)
            self._unevaluated = first + rest
        self._unevaluated = [cfg for cfg in self._unevaluated if cfg.key() not in held]
        if not self._unevaluated:
            self.exhausted = True
            return
        cfg = self._unevaluated[0]
        params = {GRID_PARAM: self.grid.index(cfg)} if self.grid is not None else \
            params_for(cfg, self.spec, {cfg.key()}, self.offered)
        self.study.enqueue_trial(params, user_attrs={"queued_after_repeats": STALL}, skip_if_exists=True)

    def await_trial(self, trial_id: int) -> None:
        """Waits for another trial to finish (or its worker to be found dead: then this trial evaluates)."""
        storage, waited = self.study._storage, 0.0
        while not storage.get_trial(trial_id).state.is_finished():
            time.sleep(POLL_S)
            waited += POLL_S
            if waited >= 3 * HEARTBEAT_S:
                _recover_stale(self.study)
                waited = 0.0

    def finish(self, trial: optuna.Trial, outcome: TrialOutcome, plan: Plan | None = None) -> Any:
        """Stores the outcome; returns the objective values, or raises TrialPruned for a screened-out one. A repeat
        is no evaluation: `on_trial` is not told of it."""
        _store(trial, outcome)
        if SET_CONSTRAINT:  # one value, the summed violation: what TPE and NSGA-II read, at one storage write
            trial.set_constraint("violation", summed_violation(constraints_of(trial)))
        if self.on_trial and not (plan is not None and plan.repeat):
            self.on_trial(trial, outcome, "reused_from" in trial.user_attrs)
        if outcome.status == "rejected":
            raise optuna.TrialPruned(outcome.reason)
        return _values(self.spec, outcome)

    def evaluate_here(self, trial: optuna.Trial) -> Any:
        """The whole trial in this process (the objective of an in-process study)."""
        plan = self.prepare(trial)
        while plan.running is not None:
            self.await_trial(plan.running)
            plan = self.answer(trial, plan.cfg)
        outcome = plan.reuse
        if outcome is None:
            outcome = asyncio.run(self.evaluator.evaluate(plan.cfg))
        elif plan.rejudge:
            outcome = asyncio.run(self.evaluator.rejudged(outcome))
        return self.finish(trial, outcome, plan)

    def evaluated(self) -> int:
        return len(evaluated_trials(self.study))

    def done(self, wanted: int) -> bool:
        """Whether the study holds `wanted` evaluations, or this process has nothing left to evaluate."""
        return self.exhausted or self.evaluated() >= wanted

    @property
    def written_whole(self) -> bool:
        """An exhaustive projected study stores each trial whole, in one storage transaction: asked and told, a trial
        takes about ten (its parameter, seven attributes, the constraint, the state), which was most of the time of
        a study whose trials are simulated in milliseconds. Nothing is sampled, so nothing is lost by not asking."""
        return self.grid is not None and self.spec.mode == "project"

    def not_evaluated(self, wanted: int) -> list[int]:
        """The grid indices to evaluate for `wanted` finished trials: the next ones in the sampler's order that no
        trial holds (finished, running or queued), as many as are missing beside the queued ones."""
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(t.state in FINISHED and not is_repeat(t) for t in trials)
        queued = sum(t.state == TrialState.WAITING for t in trials)
        taken = taken_indices(trials)
        order = getattr(self.study.sampler, "order", range(len(self.grid)))
        return [i for i in order if i not in taken][:max(0, wanted - finished - queued)]

    def evaluate_whole(self, index: int) -> None:
        """Evaluates grid configuration `index` and stores the trial at once (see `written_whole`)."""
        cfg = self.grid[index]
        started = datetime.now()
        outcome = asyncio.run(self.evaluator.evaluate(cfg))
        attrs = {"config_key": cfg.key(), **stored_attrs(outcome)}
        violation = constraints_of(attrs)
        system = ({f"{CONSTRAINTS_KEY}:violation": summed_violation(violation)} if SET_CONSTRAINT
                  else {CONSTRAINTS_KEY: violation})
        rejected = outcome.status == "rejected"
        values = None if rejected else _values(self.spec, outcome)
        trial = optuna.trial.create_trial(
            state=TrialState.PRUNED if rejected else TrialState.COMPLETE,
            values=None if values is None else list(values) if isinstance(values, tuple) else [values],
            params={GRID_PARAM: index}, distributions={GRID_PARAM: IntDistribution(0, len(self.grid) - 1)},
            user_attrs=attrs, system_attrs=system)
        trial.datetime_start = started
        storage = self.study._storage
        trial.number = storage.get_trial_number_from_id(storage.create_new_trial(self.study._study_id, trial))
        if self.on_trial:
            self.on_trial(trial, outcome, False)


def run_study(spec: StudySpec, evaluator: Evaluator, storage: str, study_name: str | None = None,
              on_trial: Callable[[optuna.trial.FrozenTrial, TrialOutcome, bool], None] | None = None,
              executor: Any = None) -> optuna.Study:
    """Runs the study to `spec.n_trials` finished trials. `executor`: None evaluates every trial in this process;
    an executor (see `dispatch`) runs them where their hardware is, through `executor.run(steps, remaining, wanted)`."""
    steps, wanted = setup_study(spec, evaluator, storage, study_name, on_trial)
    run_trials(steps, wanted, executor)
    return steps.study


def setup_study(spec: StudySpec, evaluator: Evaluator, storage: str, study_name: str | None = None,
                on_trial: Callable[[optuna.trial.FrozenTrial, TrialOutcome, bool], None] | None = None,
                ) -> tuple[TrialSteps, int]:
    """Opens (or resumes) the study and queues what comes first; returns its steps and the evaluations wanted."""
    study = open_study(spec, storage, study_name, evaluator.pricing_offered)
    _recover_stale(study)
    steps = TrialSteps(study, spec, evaluator, on_trial)

    # Trials whose quality nothing could check, and which can be judged now (an endpoint was declared for their
    # model, or its answers were cached since): queued again, on top of n_trials, and judged on quality only.
    latest = {o.config.key(): (t, o) for t, o in outcomes(study)}  # in trial order: the last one wins
    for key, (t, o) in latest.items():
        if Evaluator.quality_unverified(o) and evaluator.quality_available(o.config):
            study.enqueue_trial(t.params, skip_if_exists=False)
            steps.requeued.add(key)
    baseline = study.user_attrs.get("baseline")
    fresh = not study.get_trials(deepcopy=False)
    if baseline is not None and steps.grid is None and fresh:
        params = params_for(TrialOutcome.model_validate(baseline).config, spec, offered=steps.offered)
        if params is not None:  # start from today's plan: a known point, reused rather than measured again
            study.enqueue_trial(params, skip_if_exists=True)
    if fresh and steps.grid is None and spec.warm_start:
        warm_start(study, spec, evaluator)  # then the configurations the closed-form estimate ranks cheapest
    return steps, max(spec.n_trials, steps.evaluated()) + len(steps.requeued)


def run_trials(steps: TrialSteps, wanted: int, executor: Any = None, share: tuple[int, int] = (0, 1),
               todo: list[int] | None = None) -> None:
    """Runs trials until the study holds `wanted` evaluated ones (counting those of other workers), or nothing in
    its space is left to evaluate. A study written whole (see `TrialSteps.written_whole`) splits `todo` (default:
    `not_evaluated`) between its processes: process `share[0]` of `share[1]` takes every `share[1]`-th index; the
    first process also runs the queued trials."""
    study = steps.study
    remaining = wanted - steps.evaluated()
    if remaining <= 0:
        return
    if executor is not None:
        executor.run(steps, remaining, wanted)
        return
    if steps.written_whole:
        todo = steps.not_evaluated(wanted) if todo is None else todo
        rank, ranks = share
        queued = sum(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))
        if rank == 0 and queued:  # configurations queued again (to be judged on quality): asked and told
            study.optimize(steps.evaluate_here, n_trials=queued, gc_after_trial=False)
        for index in todo[rank::ranks]:
            steps.evaluate_whole(index)
        return
    # no trial count: answered proposals do not count, and `done` ends the study (see TrialSteps.queue_unevaluated)
    study.optimize(steps.evaluate_here, callbacks=[lambda s, _: s.stop() if steps.done(wanted) else None],
                   gc_after_trial=False)


def stored_attrs(outcome: TrialOutcome) -> dict[str, Any]:
    """What a trial keeps of its outcome: the whole of it, and what tables and samplers read without parsing it."""
    data = json.loads(outcome.model_dump_json())
    return {"outcome": data, "status": outcome.status, "reason": outcome.reason, "config": data["config"],
            "constraints": outcome.constraints, "label": outcome.config.label()}


def _store(trial: optuna.Trial, outcome: TrialOutcome) -> None:
    for key, value in stored_attrs(outcome).items():
        trial.set_user_attr(key, value)


def _values(spec: StudySpec, o: TrialOutcome) -> Any:
    cost = o.objective if o.objective is not None else PENALTY
    if not spec.multi_objective:
        return cost
    return cost, o.ttft_p95_ms if o.ttft_p95_ms is not None else PENALTY, o.quality_score or 0.0


def outcomes(study: optuna.Study, repeats: bool = False) -> list[tuple[optuna.trial.FrozenTrial, TrialOutcome]]:
    """The study's evaluated trials with their outcomes, in trial order; `repeats`: also the proposals answered
    from an earlier trial (each a copy of its outcome)."""
    return [(t, TrialOutcome.model_validate(t.user_attrs["outcome"])) for t in study.get_trials(deepcopy=False)
            if "outcome" in t.user_attrs and t.state in FINISHED and (repeats or not is_repeat(t))]


def pareto_front(rows: list[tuple[Any, TrialOutcome]]) -> list[tuple[Any, TrialOutcome]]:
    """The rows no other row dominates on cost, p95 TTFT (both lower is better) and quality (higher). One rule for
    the study and the report. A missing figure counts as the worst on its axis (as the objective values' penalty
    TTFT does): what was not measured never makes a configuration look better or knocks a measured one off."""
    inf = float("inf")

    def point(o: TrialOutcome) -> tuple[float, float, float]:
        return (inf if o.objective is None else o.objective, inf if o.ttft_p95_ms is None else o.ttft_p95_ms,
                inf if o.quality_score is None else -o.quality_score)

    points = [point(o) for _, o in rows]
    return [row for row, p in zip(rows, points)
            if not any(q != p and all(a <= b for a, b in zip(q, p)) for q in points)]


def best(study: optuna.Study) -> list[tuple[optuna.trial.FrozenTrial, TrialOutcome]]:
    """The cheapest feasible trial (single objective) or the feasible Pareto set (multi-objective)."""
    feasible = [(t, o) for t, o in outcomes(study) if o.status == "feasible"]
    if not feasible:
        return []
    if len(study.directions) == 1:
        return [min(feasible, key=lambda x: rank(x[1]))]  # the recommendation's order, ties included
    return sorted(pareto_front(feasible), key=lambda x: x[1].objective)
