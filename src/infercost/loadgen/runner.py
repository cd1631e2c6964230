"""The load generator: replays requests against an engine, open loop (absolute schedule) or closed loop
(fixed concurrency), and records every token's arrival. Each finished record goes to `sink` at once, so an
interrupted run keeps what it measured."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from infercost.engines.base import Chunk, Engine, RequestFailed, Usage
from infercost.loadgen.records import RequestRecord
from infercost.loadgen.schedule import arrival_offsets, count_for_duration, phased_offsets
from infercost.redact import redact_text
from infercost.spec.workload import Traffic
from infercost.workload.requests import Request

Sink = Callable[[RequestRecord], None]
StopCheck = Callable[["LoadGenerator"], "str | None"]
_SPIN_S = 0.002
_STOP_CHECK_S = 0.01  # a stop check may cost O(records): asked at most this often while sending
_FREEZE_EVERY_S = 1.0


def _sessions(requests: Sequence[Request]) -> list[list[Request]]:
    """Multi-turn requests grouped by session, turns in order (empty for single-turn workloads)."""
    if not requests or requests[0].meta.get("session") is None:
        return []
    grouped: dict[Any, list[Request]] = {}
    for r in requests:
        grouped.setdefault(r.meta["session"], []).append(r)
    return [sorted(turns, key=lambda r: r.meta.get("turn", 0)) for turns in grouped.values()]


class LoadGenerator:
    def __init__(
        self,
        engine: Engine,
        requests: Sequence[Request],
        traffic: Traffic,
        sink: Sink | None = None,
        clock: Callable[[], float] = time.perf_counter,
        stop_check: StopCheck | None = None,
        unreachable_after: int | None = 5,
    ):
        """`stop_check` is asked before each request is sent; a reason (not None) ends the run early: nothing more is
        sent and requests in flight are cancelled (recorded as failed: "cancelled"). Capacity probes use it to stop
        a rate that has already lost its SLO or whose queue keeps growing.

        The run is aborted (`abort_reason`, a failure rather than an early stop) when `unreachable_after` requests in
        a row could not connect to the server (a closed port, a server killed mid-run), or when `sink` fails (a full
        or read-only results disk): no more load is sent to measure nothing, and nothing more could be kept."""
        if not requests:
            raise ValueError("no requests to send")
        self.engine = engine
        self.requests = list(requests)
        self.traffic = traffic
        self.sink = sink or (lambda record: None)
        self.clock = clock
        self._t0 = 0.0
        self.records: list[RequestRecord] = []
        self.in_flight: dict[int, RequestRecord] = {}
        self.started_wall: float | None = None
        self.stop_check = stop_check
        self.stopped_reason: str | None = None
        self.abort_reason: str | None = None
        self.unreachable_after = unreachable_after
        self._unreachable_in_a_row = 0
        self._last_stop_check = -math.inf
        self._gc_frozen = False
        self._secrets = tuple(engine.secrets()) if hasattr(engine, "secrets") else ()
        self._passes: dict[tuple[int, int], np.ndarray] = {}
        self.sessions = _sessions(self.requests)
        self._next = 0
        self._phase_of: np.ndarray | None = None

    def now(self) -> float:
        """Seconds since the measured run started."""
        return self.clock() - self._t0

    def _should_stop(self, force: bool = False) -> bool:
        if self.stopped_reason is not None:
            return True
        if self.stop_check is None:
            return False
        now = self.clock()
        if force or now - self._last_stop_check >= _STOP_CHECK_S:
            self._last_stop_check = now
            self.stopped_reason = self.stop_check(self)
        return self.stopped_reason is not None

    def abort(self, reason: str) -> None:
        """End the run as a failure: nothing more is sent, requests in flight are cancelled."""
        if self.abort_reason is None:
            self.abort_reason = reason
        if self.stopped_reason is None:
            self.stopped_reason = reason

    def planned_requests(self) -> int | None:
        t = self.traffic
        if t.arrival == "trace":
            return len(self.requests)
        if self.sessions:  # turns of the sessions that will start (each may end early on a failed turn)
            n = t.num_requests or len(self.sessions)
            return sum(len(self.session_for(i)) for i in range(n)) if t.num_requests else None
        if t.num_requests is not None:
            return t.num_requests
        if t.phases:
            return None  # drawn when the run starts
        if t.arrival != "concurrency" and t.rate and not math.isinf(t.rate):
            return round(t.rate * t.duration_s)
        return None

    async def _send(self, record: RequestRecord, request: Request) -> None:
        text: list[str] = []
        record.sent_s = self.now()
        if not record.warmup:
            self.in_flight[record.index] = record
        try:
            async with asyncio.timeout(self.traffic.request_timeout_s):
                async for event in self.engine.generate(request):
                    t = self.now()
                    if isinstance(event, Chunk):
                        if record.first_token_s is None:
                            record.first_token_s = t
                        if record.first_answer_s is None and not event.reasoning:
                            record.first_answer_s = t
                        record.token_times_s.append(t)
                        record.chunk_tokens.append(event.tokens or 1)
                        if not event.reasoning:  # the answer; a model's thinking is timed and counted, not kept
                            text.append(event.text)
                    elif isinstance(event, Usage):
                        record.input_tokens = event.input_tokens
                        record.output_tokens = event.output_tokens
                        record.reasoning_tokens = event.reasoning_tokens
                        record.cached_input_tokens = event.cached_input_tokens
                        record.token_count_source = event.source
                        record.finish_reason = event.finish_reason
            record.end_s = self.now()
        except TimeoutError:
            record.error = f"timeout after {self.traffic.request_timeout_s:g} s"
            record.error_kind = "timeout"
        except RequestFailed as exc:
            record.error = str(exc)
            record.error_kind = exc.kind
            record.http_status = exc.status
        except asyncio.CancelledError:
            record.error = "cancelled"
            record.error_kind = "cancelled"
            raise
        except Exception as exc:  # an engine bug must cost one request, not the run
            record.error = f"{type(exc).__name__}: {exc}"
            record.error_kind = "engine"
        finally:
            if record.end_s is None:
                record.end_s = self.now()  # when it failed: still bounds the run's duration
            # Nothing recorded carries a credential: an error body may echo the key (some servers do on 401).
            record.error = redact_text(record.error, self._secrets)
            record.output_text = "".join(text)
            if self._secrets and any(s in record.output_text for s in self._secrets):
                record.output_text = redact_text(record.output_text, self._secrets)
            self.in_flight.pop(record.index, None)
            self.records.append(record)
            self._watch_unreachable(record)
            self._keep(record)

    def _keep(self, record: RequestRecord) -> None:
        try:
            self.sink(record)
        except OSError as exc:  # the results disk is full or read-only: stop the load now
            self.abort(f"writing results failed: {exc}")
        except Exception as exc:  # a sink that breaks would lose every record after this one: stop as well
            self.abort(f"recording a request failed: {type(exc).__name__}: {exc}")

    def _watch_unreachable(self, record: RequestRecord) -> None:
        if record.error_kind == "connect":
            self._unreachable_in_a_row += 1
        elif record.ok:
            self._unreachable_in_a_row = 0
        if self.unreachable_after and self._unreachable_in_a_row >= self.unreachable_after:
            self.abort(f"server unreachable: {self._unreachable_in_a_row} requests in a row could not connect "
                       f"({record.error})")

    def _record(self, index: int, request: Request, warmup: bool, scheduled: float | None) -> RequestRecord:
        return RequestRecord(
            request_id=request.id,
            index=index,
            warmup=warmup,
            scheduled_s=scheduled,
            prefix_group=request.prefix_group,
        )

    async def _warmup(self) -> None:
        n = self.traffic.warmup_requests
        if not n:
            return
        # Warm-up takes prompts from the end of the list, so the measured run starts with prompt 0 uncached.
        picks = [self.requests[-(i % len(self.requests)) - 1] for i in range(n)]
        await asyncio.gather(*(self._send(self._record(-(i + 1), r, True, None), r) for i, r in enumerate(picks)))

    def _pass_index(self, i: int, n: int) -> int:
        """Which of `n` items the i-th use takes: each once per pass, the first pass in order, each later pass in a
        new order seeded from the traffic's seed and the pass. Cycling in one order would put a repeat right after
        the same neighbours every time, and flatter a prefix cache."""
        if i < n:
            return i
        p = i // n
        if (n, p) not in self._passes:
            self._passes[(n, p)] = np.random.default_rng([self.traffic.seed, p]).permutation(n)
        return int(self._passes[(n, p)][i % n])

    def request_for(self, i: int) -> Request:
        """The i-th request sent (see _pass_index when there are more requests than prompts)."""
        return self.requests[self._pass_index(i, len(self.requests))]

    def session_for(self, i: int) -> list[Request]:
        """The i-th session started (see _pass_index)."""
        return self.sessions[self._pass_index(i, len(self.sessions))]

    def prompt_reuse(self) -> dict[str, Any] | None:
        """How often prompts were sent more than once (for the manifest), or None when none was."""
        if self.sessions:
            started = len({r.session for r in self.records if not r.warmup})
            n = len(self.sessions)
            return None if started <= n else {"sessions": n, "started": started, "passes": math.ceil(started / n),
                                              "order": "every session once per pass, later passes in a new seeded "
                                                       "order"}
        sent = sum(1 for r in self.records if not r.warmup)
        n = len(self.requests)
        if sent <= n:
            return None
        return {"prompts": n, "requests": sent, "passes": math.ceil(sent / n),
                "order": "every prompt once per pass, each pass after the first in a new seeded order"}

    def schedule(self) -> list[float]:
        t = self.traffic
        if t.arrival == "trace":  # the traced offsets, already windowed and sped up
            return [float(r.meta["offset_s"]) for r in self.requests]
        if t.phases:
            offsets, self._phase_of = phased_offsets(t.phases, t.arrival, t.burstiness, t.seed)
            return offsets.tolist()
        n = t.num_requests if t.num_requests is not None else count_for_duration(t.rate, t.duration_s)
        offsets = arrival_offsets(t.arrival, t.rate, n, burstiness=t.burstiness, seed=t.seed).tolist()
        if t.duration_s is not None:
            offsets = [x for x in offsets if x <= t.duration_s]
        return offsets

    async def _sleep_until(self, due: float) -> None:
        """asyncio's timers wake up to ~1 ms late (epoll waits in whole milliseconds): sleep to just short of the
        due time, then yield to the loop (which keeps serving responses) until it arrives. A stop check is asked
        every 0.25 s meanwhile, so a run with sparse arrivals still stops soon after its reason appears."""
        now = self.now
        while (delay := due - now()) > 0:
            if delay > 0.25 + _SPIN_S:
                await asyncio.sleep(0.25)
                if self._should_stop(force=True):
                    return
                continue
            await asyncio.sleep(delay - _SPIN_S if delay > _SPIN_S else 0)

    async def _open_loop(self, offsets: list[float]) -> None:
        """One sender: it sleeps to each absolute due time of the precomputed schedule and starts that request's
        task; a sender that has fallen behind starts every overdue request at once, without yielding between them.
        The stop check is asked at most every _STOP_CHECK_S (it may scan every record so far)."""
        tasks = []
        requests, n_requests = self.requests, len(self.requests)
        spawn, send, record = asyncio.create_task, self._send, self._record
        phase_of = self._phase_of
        next_freeze = _FREEZE_EVERY_S
        for i, due in enumerate(offsets):
            await self._sleep_until(due)
            if self._should_stop():
                break
            request = requests[i] if i < n_requests else self.request_for(i)
            rec = record(i, request, False, due)
            if phase_of is not None:  # an excluded phase (a warm-up) is sent and recorded, not measured
                phase = self.traffic.phases[phase_of[i]]
                rec.phase, rec.warmup = phase.name, phase.exclude
            tasks.append(spawn(send(rec, request)))
            if due >= next_freeze:  # what has lived this long (records, connections) need not be scanned again
                next_freeze = due + _FREEZE_EVERY_S
                if self._gc_frozen:
                    gc.freeze()
        await self._finish(tasks)

    async def _session_loop(self, offsets: list[float]) -> None:
        """Open loop across sessions: each starts at its due time, whatever the others are doing."""
        tasks = []
        for i, due in enumerate(offsets):
            await self._sleep_until(due)
            if self._should_stop():
                break
            tasks.append(asyncio.create_task(self._session(i, self.session_for(i), due)))
        await self._finish(tasks)

    async def _session(self, number: int, turns: list[Request], due: float) -> None:
        """Closed loop within a session: each turn sends the history so far (with the answers really given), the
        next goes out after the answer and the turn's think time. A failed turn ends its session."""
        history: list[dict[str, str]] = []
        scheduled = due
        for turn in turns:
            if self._should_stop():
                return
            messages = list(turn.messages) if not history else history + [turn.messages[-1]]
            request = dataclasses.replace(turn, messages=messages)
            record = self._record(self._next, request, False, scheduled)
            self._next += 1
            record.session, record.turn = number, turn.meta.get("turn")
            await self._send(record, request)
            if not record.ok:
                return
            history = messages + [{"role": "assistant", "content": record.output_text}]
            scheduled = self.now() + float(turn.meta.get("think_s", 0.0))
            await self._sleep_until(scheduled)

    async def _finish(self, tasks: list[asyncio.Task]) -> None:
        """Wait for the requests in flight; if the run is stopped meanwhile, cancel them."""
        pending = {t for t in tasks if not t.done()}
        try:
            while pending:
                _, pending = await asyncio.wait(pending, timeout=0.25)
                if pending and self._should_stop():
                    break
        finally:  # stopped early, or the run itself was cancelled (Ctrl-C): nothing is left running
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for t in tasks:  # surface unexpected errors (not the cancellations asked for above)
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()

    async def _closed_loop(self) -> None:
        t = self.traffic
        next_index = 0

        async def user() -> None:
            nonlocal next_index
            while True:
                if t.num_requests is not None and next_index >= t.num_requests:
                    return
                if t.duration_s is not None and self.now() >= t.duration_s:
                    return
                if self._should_stop():
                    return
                i = next_index
                next_index += 1
                request = self.request_for(i)
                await self._send(self._record(i, request, False, None), request)

        await self._finish([asyncio.create_task(user()) for _ in range(t.concurrency)])

    @contextlib.contextmanager
    def _steady_gc(self):
        """A full collection walks every tracked object in the process (tens of ms where torch or pandas are loaded):
        one during a run delays every send due meanwhile. Collect once before the run, then freeze what lives, so
        the collector only walks what the run creates (and the sender freezes that again every second). After the
        run everything is unfrozen and collected, and a heap that was frozen before (vLLM freezes its own) is
        frozen again."""
        was_frozen = gc.get_freeze_count() > 0
        gc.collect()
        gc.freeze()
        self._gc_frozen = True
        try:
            yield
        finally:
            self._gc_frozen = False
            gc.unfreeze()
            gc.collect()
            if was_frozen:
                gc.freeze()

    async def run(self) -> list[RequestRecord]:
        self._t0 = self.clock()
        await self._warmup()
        if self.abort_reason is not None:  # the server is gone or nothing can be written: no measured run
            self.started_wall = time.time()
            return self.records
        offsets = self.schedule() if self.traffic.arrival != "concurrency" else []
        with self._steady_gc():
            self._t0 = self.clock()  # the measured run's clock starts after warm-up
            self.started_wall = time.time()
            if self.traffic.arrival == "concurrency":
                await self._closed_loop()
            elif self.sessions:
                await self._session_loop(offsets)
            else:
                await self._open_loop(offsets)
        return self.records
