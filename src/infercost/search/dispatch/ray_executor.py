"""A study whose measured trials run on a Ray cluster, each on a node with the accelerator it names. The driver keeps
the Optuna study (ask and tell, so trials of different placements are in flight together) and its storage, the
record of every trial; Ray places each trial by the node's accelerator label, one trial per node at a time.

Faults: a trial whose worker or node is lost is failed in the storage with the error and the records its node had
sent, and its configuration queued again, once; a second loss records it as not measurable. Ctrl-C or SIGTERM
cancels the remote tasks and queues their configurations again, so the next run of the study measures them first;
a driver killed outright leaves its trials without heartbeats, and the next run fails and requeues them (Optuna's
stale-trial retry)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from infercost.capacity.result import CapacityResult
from infercost.engines.reachability import unreachable
from infercost.errors import InputError
from infercost.search.dispatch.cluster import Inventory, Placement
from infercost.search.dispatch.node import evaluate_on_node, outcome_of
from infercost.search.evaluate import Evaluator, TrialOutcome
from infercost.search.space import TrialConfig
from infercost.search.study import HEARTBEAT_S, Plan, TrialSteps

STANDIN_ENV = "INFERCOST_RAY_STANDIN"  # a deployment (JSON) measured in place of GPU placements: for testing only
MAX_LOSSES = 2  # a configuration whose worker or node is lost this many times is recorded as not measurable
TASK_NAME = "infercost-trial"


def _remote_trial(payload: dict[str, Any], queue: Any, tag: str) -> dict[str, Any]:
    """The Ray task: one trial on this node, its files copied to the driver's queue as they change."""
    return evaluate_on_node(payload, lambda rel, data: queue.put((tag, rel, data)))


def standin_from_env() -> dict[str, Any] | None:
    raw = os.environ.get(STANDIN_ENV)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg} at character {exc.pos}): expected a deployment mapping, e.g. "
                         '{"engine": "openai", "model": "m", "base_url": "http://127.0.0.1:8000/v1"}',
                         source=STANDIN_ENV) from None
    if not isinstance(value, dict):
        raise InputError("expected a deployment mapping (a JSON object)", source=STANDIN_ENV)
    return value


def _check_address(address: str | None) -> None:
    if address in (None, "", "auto", "local"):
        return
    url = address if "://" in address else f"ray://{address}"
    problem = unreachable(url)
    if problem:
        raise InputError(f"cannot reach the Ray cluster: {problem}: expected the head's address (HOST:PORT, or "
                         "ray://HOST:10001 for Ray Client)", field="--address")


@dataclass
class Flight:
    trial: optuna.Trial
    cfg: TrialConfig
    future: Future
    ref: Any = None  # the Ray task, for a trial measured on a node
    placement: Placement | None = None
    waiting: bool = False  # the future is another trial evaluating the same configuration: answered once it ends


class RayExecutor:
    """Runs a study's trials: measured placements as Ray tasks on nodes with their accelerator, everything else
    (projections, hosted APIs, `here`) in this process. `slots`: trials in flight at once."""

    def __init__(self, address: str | None = None, standin: dict[str, Any] | None = None,
                 results_root: str | Path = "results"):
        try:
            import ray
        except ImportError:
            raise InputError("the ray executor needs Ray: pip install 'infercost[ray]'", field="--executor") from None
        from ray.util.queue import Queue

        _check_address(address)
        self.ray = ray
        if not ray.is_initialized():
            on_term = signal.getsignal(signal.SIGTERM)
            try:
                ray.init(address=address or None, namespace="infercost", log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InputError(f"cannot join the Ray cluster: {' '.join(str(exc).split())[:300]}",
                                 field="--address") from None
            finally:  # Ray's core worker installs its own fatal-signal handler; SIGTERM stays a clean stop
                if on_term is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, on_term)
            self._owns_ray = True
        else:
            self._owns_ray = False
        self.standin = standin
        self.inventory = Inventory.of(ray.nodes(), standin=standin is not None)
        self.slots = self.inventory.measuring_nodes() + 1  # every node measuring, and this process
        self.queue = Queue(actor_options={"num_cpus": 0})
        self.remote = ray.remote(max_retries=0)(_remote_trial)
        self.root = Path(results_root)
        self._measured: dict[str, tuple[dict[str, Any], int]] = {}  # capacity key -> (node facts, trial number)
        self._local = ThreadPoolExecutor(1, thread_name_prefix="infercost-local")
        # a configuration whose capacity is being measured on a node: its other pricing models wait for it
        self._landing: dict[str, Future] = {}
        self._waiters = ThreadPoolExecutor(8, thread_name_prefix="infercost-wait")

    # ------------------------------------------------------------------ placement

    def placement(self, cfg: TrialConfig) -> Placement | str | None:
        """The Ray resources of a measured placement, why none can take it, or None where nothing is measured."""
        if cfg.is_api or cfg.hardware == "here":
            return None
        return self.inventory.placement(cfg.hardware, cfg.devices)

    def attach(self, evaluator: Evaluator) -> None:
        """Tells the driver's evaluator which placements the cluster measures (their capacities come from nodes)."""
        evaluator.measured_on = lambda cfg: isinstance(self.placement(cfg), Placement)
        evaluator.measured_elsewhere = True
        self.evaluator = evaluator

    # ------------------------------------------------------------------ one trial

    def evaluate(self, cfg: TrialConfig, tag: str = "baseline") -> TrialOutcome:
        """One configuration, waited for (the baseline, before the study starts)."""
        flight = self._submit(cfg, tag)
        if isinstance(flight, TrialOutcome):
            return flight
        try:
            result = flight.result()
        finally:
            self._resolve(cfg)
        return self._landed(cfg, result, self.root / "nodes" / tag) if isinstance(result, dict) else result

    def _resolve(self, cfg: TrialConfig) -> None:
        landing = self._landing.pop(Evaluator.capacity_key(cfg), None)
        if landing is not None and not landing.done():
            landing.set_result(None)

    def _submit(self, cfg: TrialConfig, tag: str) -> Future | TrialOutcome:
        ev = self.evaluator
        key = Evaluator.capacity_key(cfg)
        if key in self._landing:  # measured now on a node for another pricing model: priced once it lands
            return self._waiters.submit(self._after, self._landing[key], cfg, tag)
        placement = self.placement(cfg)
        if isinstance(placement, Placement) and ev.measures(cfg) and not ev.known_capacity(cfg):
            screened = ev.screened(cfg)
            if isinstance(screened, TrialOutcome):
                return screened
            payload = {"spec": ev.spec, "workload": ev.workload, "catalog": ev.catalog, "cfg": cfg,
                       "resource": placement.resource, "standin": self.standin}
            ref = self.remote.options(**placement.options(), name=TASK_NAME).remote(payload, self.queue, tag)
            future = ref.future()
            future.ray_ref = ref  # type: ignore[attr-defined]
            self._landing[key] = Future()
            return future
        note = placement if isinstance(placement, str) and ev.spec.mode in ("measure", "hybrid") else None
        return self._local.submit(self._here, cfg, note)

    def _after(self, landing: Future, cfg: TrialConfig, tag: str) -> TrialOutcome | dict[str, Any]:
        landing.result()
        submitted = self._submit(cfg, tag)
        return submitted if isinstance(submitted, TrialOutcome) else submitted.result()

    def _here(self, cfg: TrialConfig, note: str | None) -> TrialOutcome:
        outcome = asyncio.run(self.evaluator.evaluate(cfg))
        known = self._measured.get(Evaluator.capacity_key(cfg))
        if known is not None and outcome.kind == "measured":
            outcome.node, outcome.dispatch = known[0], f"capacity measured on {_node_name(known[0])} (trial {known[1]})"
        elif note and outcome.kind == "projected":
            outcome.dispatch = f"projected: {note}"
        return outcome

    def _landed(self, cfg: TrialConfig, result: dict[str, Any], where: Path) -> TrialOutcome:
        self.drain()
        for rel, data in result["files"].items():
            _write(where / rel, data)
        outcome, capacity = outcome_of(result, where)
        node = result["node"]
        outcome.node = node
        outcome.dispatch = f"measured on {_node_name(node)}" + (
            f", by the stand-in {node['standin']}" if node.get("standin") else "")
        if capacity is not None:
            self.evaluator.remember_capacity(cfg, CapacityResult.model_validate_json(capacity))
        return outcome

    # ------------------------------------------------------------------ the study

    def run(self, steps: TrialSteps, remaining: int, wanted: int) -> None:  # noqa: ARG002 (wanted bounds it)
        study = steps.study
        inflight: dict[Future, Flight] = {}
        try:
            while True:
                self.drain()
                # answered proposals are told at once and do not count; `exhausted`: nothing left to evaluate
                while len(inflight) < self.slots and steps.evaluated() + len(inflight) < wanted \
                        and not steps.exhausted:
                    with warnings.catch_warnings():  # heartbeats are recorded here (see _beat)
                        warnings.filterwarnings("ignore", message="Heartbeat of storage")
                        trial = study.ask()
                    flight = self._launch(steps, trial, steps.prepare(trial))
                    if flight is not None:
                        inflight[flight.future] = flight
                if not inflight:
                    return
                done, _ = wait(list(inflight), timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
                self._beat(study, inflight.values())
                for future in done:
                    flight = inflight.pop(future)
                    if flight.waiting:  # the other trial has ended: its outcome, or (it failed) this one evaluates
                        flight = self._launch(steps, flight.trial, steps.answer(flight.trial, flight.cfg))
                        if flight is not None:
                            inflight[flight.future] = flight
                        continue
                    self._settle(steps, flight)
        except BaseException:
            self._abandon(study, list(inflight.values()))
            raise

    def _launch(self, steps: TrialSteps, trial: optuna.Trial, plan: Plan) -> Flight | None:
        cfg, reuse = plan.cfg, plan.reuse
        if plan.running is not None:  # an earlier trial in flight evaluates it: waited for off this loop
            return Flight(trial, cfg, self._waiters.submit(steps.await_trial, plan.running), waiting=True)
        if reuse is not None and not plan.rejudge:
            _tell(steps, trial, reuse, plan)
            return None
        if plan.rejudge:
            return Flight(trial, cfg, self._local.submit(lambda: asyncio.run(self.evaluator.rejudged(reuse))))
        submitted = self._submit(cfg, f"trial-{trial.number}")
        if isinstance(submitted, TrialOutcome):
            _tell(steps, trial, submitted)
            return None
        return Flight(trial, cfg, submitted, ref=getattr(submitted, "ray_ref", None))

    def _settle(self, steps: TrialSteps, flight: Flight) -> None:
        trial, cfg = flight.trial, flight.cfg
        where = self.root / "nodes" / f"trial-{trial.number}"
        try:
            result = flight.future.result()
        except Exception as exc:
            errors = self.ray.exceptions
            if isinstance(exc, errors.RayError) and not isinstance(exc, errors.RayTaskError):
                self._lost(steps, flight, exc, where)
            else:  # the evaluation itself raised, here or on the node: this configuration's result
                outcome = TrialOutcome(config=cfg, status="infeasible",
                                       reason=" ".join(f"{type(exc).__name__}: {exc}".split())[:500])
                _tell(steps, trial, outcome)
            self._resolve(cfg)
            return
        if isinstance(result, dict):  # from a node
            result = self._landed(cfg, result, where)
            self._measured[Evaluator.capacity_key(cfg)] = (result.node or {}, trial.number)
            self._resolve(cfg)
        _tell(steps, trial, result)

    def _lost(self, steps: TrialSteps, flight: Flight, exc: BaseException, where: Path) -> None:
        """A worker or node lost mid-trial: the trial fails with what its node had sent, and is queued again once."""
        study, trial = steps.study, flight.trial
        self.drain()
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        key = flight.cfg.key()
        losses = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                     if t.user_attrs.get("config_key") == key and "lost" in t.user_attrs)
        trial.set_user_attr("lost", why)
        if where.exists():
            trial.set_user_attr("partial_records", str(where))
        if losses + 1 >= MAX_LOSSES:
            outcome = TrialOutcome(config=flight.cfg, status="infeasible",
                                   reason=f"its worker or node was lost {losses + 1} times while measuring: {why}")
            _tell(steps, trial, outcome)
            return
        _told(study, trial, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)

    def _beat(self, study: optuna.Study, flights: Any) -> None:
        """Heartbeats for the trials in flight (ask-and-tell runs none), so a killed driver's trials go stale."""
        record = getattr(study._storage, "record_heartbeat", None)  # noqa: SLF001 (Optuna has no public handle)
        for f in flights:
            try:
                if record is not None:
                    record(f.trial._trial_id)  # noqa: SLF001
            except Exception:
                pass

    def _abandon(self, study: optuna.Study, flights: list[Flight]) -> None:
        """Interrupted: cancel the remote tasks, and fail and requeue their trials so the next run measures them."""
        for f in flights:
            if f.ref is not None:
                try:
                    self.ray.cancel(f.ref, force=True)
                except Exception:
                    pass
        self.drain()
        for f in flights:
            try:
                f.trial.set_user_attr("interrupted", True)
                _told(study, f.trial, state=TrialState.FAIL)
                study.enqueue_trial(f.trial.params, skip_if_exists=False)
            except Exception:
                continue

    # ------------------------------------------------------------------ records

    def drain(self) -> None:
        """Writes the files nodes have sent so far under results/.../nodes/<trial>."""
        try:
            n = self.queue.qsize()
            items = self.queue.get_nowait_batch(n) if n else []
        except Exception:
            return
        for tag, rel, data in items:
            _write(self.root / "nodes" / tag / rel, data)

    def close(self) -> None:
        for landing in list(self._landing.values()):
            if not landing.done():
                landing.set_result(None)
        self._waiters.shutdown(wait=False, cancel_futures=True)
        self._local.shutdown(wait=False, cancel_futures=True)
        try:
            self.drain()
            self.ray.kill(self.queue.actor)
        except Exception:
            pass
        if self._owns_ray:
            self.ray.shutdown()


def _tell(steps: TrialSteps, trial: optuna.Trial, outcome: TrialOutcome, plan: Plan | None = None) -> None:
    try:
        values = steps.finish(trial, outcome, plan)
    except optuna.TrialPruned:
        _told(steps.study, trial, state=TrialState.PRUNED)
        return
    _told(steps.study, trial, values=values)


def _told(study: optuna.Study, trial: optuna.Trial, **kwargs: Any) -> None:
    """`study.tell`. The grid sampler calls `study.stop()` once its grid is covered, which Optuna allows only inside
    `optimize`; the trial is stored before that (Optuna's `finally`), and this loop ends by its own count."""
    try:
        study.tell(trial, **kwargs)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _node_name(node: dict[str, Any]) -> str:
    short = (node.get("node_id") or "?")[:8]
    return f"Ray node {short} ({node.get('host')}, {node.get('resource')})"


def _write(path: Path, data: bytes) -> None:
    rel = Path(*[p for p in path.parts if p not in ("..",)])  # a node names files under its own scratch store
    rel.parent.mkdir(parents=True, exist_ok=True)
    rel.write_bytes(data)
