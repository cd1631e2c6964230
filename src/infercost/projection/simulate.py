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


def simulate(requests: list[SimRequest], step: StepModel, config: SchedulerConfig) -> list[RequestRecord]:
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
    while arrivals or waiting or running:
        while arrivals and requests[arrivals[0]].arrival_s <= now:
            i = arrivals.popleft()
            waiting.append(_Seq(i, requests[i], record=records[i]))
        if not waiting and not running:
            now = requests[arrivals[0]].arrival_s
            continue
        budget = config.max_num_batched_tokens
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
            s.generated += 1
            r = s.record
            if r.first_token_s is None:
                r.first_token_s = now
            r.token_times_s.append(now)
            r.chunk_tokens.append(1)
            if s.generated >= s.req.output_tokens:
                r.end_s, r.output_tokens, r.finish_reason = now, s.generated, "length"
                finished.append(s)
        for s in finished:
            running.remove(s)
            kv_used -= s.req.prompt_tokens + s.req.output_tokens
    return records
