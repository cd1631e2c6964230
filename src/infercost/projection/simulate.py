"""A discrete-event simulation of continuous batching, after vLLM's V1 scheduler: each step first schedules the
running sequences (one token per decoding sequence, the next chunk of a prefilling one), then admits waiting
requests in arrival order while there is room in `max_num_seqs`, the token budget `max_num_batched_tokens` and the
KV cache. With prefix caching, a request whose prefix group was seen before skips the prefix's full blocks. The step
that completes a prompt emits its first token; each later step emits one more. It produces the same per-request
records as a measured run, so the metrics and the capacity search are shared.

Simplification: a request is admitted only when the KV cache can hold its whole prompt and output (vLLM allocates as
it goes and preempts when it runs out), so under KV pressure this is slightly conservative."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from infercost.loadgen.records import RequestRecord
from infercost.projection.steptime import StepModel

@dataclass(slots=True)
class SimRequest:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prefix_group: int | None = None
    prefix_tokens: int = 0


@dataclass
class SchedulerConfig:
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    kv_capacity_tokens: int = 10**9
    enable_prefix_caching: bool = True
    block_size: int = 16  # prefix-cache granularity (vLLM: 16 on GPUs, 128 on the CPU backend)


@dataclass(slots=True)
class _Seq:
    index: int
    req: SimRequest
    computed: int = 0  # prompt tokens whose KV exists
    generated: int = 0
    record: RequestRecord = field(default=None)


class SimRecords(list):
    """The records of a simulation; `stopped` says why it ended early (a TTFT bound already lost), else None."""

    stopped: str | None = None


def simulate(requests: list[SimRequest], step: StepModel, config: SchedulerConfig, token_times: bool = True,
             ttft_lost: tuple[float, int] | None = None) -> SimRecords:
    """`token_times=False` records first token, end and count only (TPOT, TTFT and e2e need no more; ITL does).
    `ttft_lost=(bound_s, allowed)` ends the run once more than `allowed` requests have waited longer than `bound_s`
    for their first token (counting those still waiting): the percentile it guards is lost whatever follows, as the
    measured probes' guard decides."""
    out = SimRecords()
    order = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)
    records = [RequestRecord(request_id=f"sim-{i}", index=i, warmup=False, scheduled_s=requests[i].arrival_s,
                             sent_s=requests[i].arrival_s, input_tokens=requests[i].prompt_tokens,
                             token_count_source="projected", prefix_group=requests[i].prefix_group)
               for i in range(len(requests))]
    arrivals = deque(order)
    waiting: deque[_Seq] = deque()
    running: list[_Seq] = []
    seen_groups: set[int] = set()
    kv_used = 0
    now = 0.0
    late = 0  # requests whose first token came after the TTFT bound
    prefilling = 0  # running sequences not yet past their prompt
    bound, allowed = ttft_lost if ttft_lost is not None else (None, 0)
    while arrivals or waiting or running:
        if bound is not None:
            waiting_late = 0
            for s in waiting:  # oldest first: stop at the first within the bound
                if now - s.req.arrival_s <= bound:
                    break
                waiting_late += 1
            if late + waiting_late > allowed:
                out.extend(records)
                out.stopped = (f"SLO already lost: {late + waiting_late} requests over the TTFT bound "
                               f"{bound * 1e3:g} ms (allowed {allowed})")
                return out
        while arrivals and requests[arrivals[0]].arrival_s <= now:
            i = arrivals.popleft()
            waiting.append(_Seq(i, requests[i], record=records[i]))
        if not waiting and not running:
            now = requests[arrivals[0]].arrival_s
            continue
        budget = config.max_num_batched_tokens
        if not token_times and running and not prefilling and _decode_only(running, waiting, budget, kv_used,
                                                                            config):
            now = _fast_forward(running, step, now, requests[arrivals[0]].arrival_s if arrivals else None)
            for s in [s for s in running if s.generated >= s.req.output_tokens]:
                running.remove(s)
                kv_used -= s.req.prompt_tokens + s.req.output_tokens
            continue
        scheduled: list[tuple[_Seq, int]] = []
        for s in running:
            if budget <= 0:
                break
            n = 1 if s.computed >= s.req.prompt_tokens else min(s.req.prompt_tokens - s.computed, budget)
            scheduled.append((s, n))
            budget -= n
        while waiting and budget > 0 and len(running) < config.max_num_seqs:
            s = waiting[0]
            need = s.req.prompt_tokens + s.req.output_tokens
            if kv_used + need > config.kv_capacity_tokens:
                if not running and not scheduled:  # can never fit: fail it rather than wait forever
                    waiting.popleft()
                    s.record.error = "projected: request does not fit the KV cache"
                    s.record.end_s = now
                    continue
                break
            waiting.popleft()
            if (config.enable_prefix_caching and s.req.prefix_group is not None
                    and s.req.prefix_group in seen_groups):
                s.computed = min(s.req.prefix_tokens // config.block_size * config.block_size, s.req.prompt_tokens - 1)
            if s.req.prefix_group is not None:
                seen_groups.add(s.req.prefix_group)
            kv_used += need
            running.append(s)
            prefilling += 1
            n = min(s.req.prompt_tokens - s.computed, budget)
            scheduled.append((s, n))
            budget -= n
        if not scheduled:  # waiting for KV space that only a finishing sequence frees: cannot happen with running
            now = requests[arrivals[0]].arrival_s if arrivals else now
            continue
        tokens = kv_read = pairs = 0
        for s, n in scheduled:
            context = s.computed + s.generated
            tokens += n
            kv_read += context
            pairs += n * context + n * (n + 1) / 2
        now += step.step_time(len(scheduled), tokens, kv_read, pairs)
        finished = []
        for s, n in scheduled:
            if s.computed < s.req.prompt_tokens:
                s.computed += n
                if s.computed < s.req.prompt_tokens:
                    continue  # more prompt chunks to go
                prefilling -= 1
            s.generated += 1
            r = s.record
            if r.first_token_s is None:
                r.first_token_s = now
                if bound is not None and now - s.req.arrival_s > bound:
                    late += 1
            if token_times:
                r.token_times_s.append(now)
                r.chunk_tokens.append(1)
            if s.generated >= s.req.output_tokens:
                r.end_s, r.output_tokens, r.finish_reason = now, s.generated, "length"
                finished.append(s)
        for s in finished:
            running.remove(s)
            kv_used -= s.req.prompt_tokens + s.req.output_tokens
    out.extend(records)
    return out


def _decode_only(running: list[_Seq], waiting: deque, budget: int, kv_used: int, config: SchedulerConfig) -> bool:
    """Whether the next steps only decode the running sequences (the caller knows every one is past its prompt),
    one token each, until one of them finishes or a request arrives: all fit the token budget, no waiting request
    can be admitted
    (none waits, or the batch, the budget or the KV cache is full, which only a finish changes)."""
    if len(running) > budget:
        return False
    if not waiting or len(running) >= config.max_num_seqs or budget - len(running) <= 0:
        return True
    head = waiting[0].req
    return kv_used + head.prompt_tokens + head.output_tokens > config.kv_capacity_tokens


def _fast_forward(running: list[_Seq], step: StepModel, now: float, next_arrival: float | None) -> float:
    """Runs decode-only steps without visiting each sequence per step: the same step times, summed in the same
    order, as stepping one at a time (every figure is identical), until the first sequence finishes or the next
    request has arrived. Records the tokens and the finishes; returns the clock."""
    batch = len(running)
    context = sum(s.computed + s.generated for s in running)
    steps = min(s.req.output_tokens - s.generated for s in running)
    done = 0
    while done < steps:
        kv_read = context + done * batch
        now += step.step_time(batch, batch, kv_read, kv_read + batch)
        done += 1
        if next_arrival is not None and next_arrival <= now:
            break
    for s in running:
        s.generated += done
        if s.generated >= s.req.output_tokens:
            r = s.record
            r.end_s, r.output_tokens, r.finish_reason = now, s.generated, "length"
    return now
