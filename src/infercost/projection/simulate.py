"""A discrete-event simulation of continuous batching, after vLLM's V1 scheduler: each step first schedules the
running sequences (one token per decoding sequence, the next chunk of a prefilling one), then admits waiting
requests in arrival order while there is room in `max_num_seqs`, the token budget `max_num_batched_tokens` and the
KV cache. With prefix caching, a request whose prefix group was seen before skips the prefix's full blocks. The step
that completes a prompt emits its first token; each later step emits one more. It produces the same per-request
records as a measured run, so the metrics and the capacity search are shared.

Simplification: a request is admitted only when the KV cache can hold its whole prompt and output (vLLM allocates as
it goes and preempts when it runs out), so under KV pressure this is slightly conservative."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from infercost.loadgen.records import RequestRecord
from infercost.metrics.columns import Columns
from infercost.projection.kernel import run_schedule
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


class SimRecords(list):
    """The records of a simulation; `stopped` says why it ended early (a TTFT bound already lost), else None."""

    stopped: str | None = None


@dataclass
class SimBatch:
    """The requests of a simulation as arrays, in any order (a probe of 20,000 requests needs no object per
    request). `group` is -1 for a request without a shared prefix."""

    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    group: np.ndarray
    prefix_tokens: int = 0

    @classmethod
    def of(cls, requests: list[SimRequest]) -> "SimBatch":
        return cls(np.array([r.arrival_s for r in requests], dtype=float),
                   np.array([r.prompt_tokens for r in requests], dtype=np.int64),
                   np.array([r.output_tokens for r in requests], dtype=np.int64),
                   np.array([-1 if r.prefix_group is None else r.prefix_group for r in requests], dtype=np.int64),
                   max((r.prefix_tokens for r in requests), default=0))


@dataclass
class SimResult:
    """Per request, in the batch's order: first token and end (NaN: none), tokens generated (-1: unfinished),
    whether it could never fit the KV cache, and every token's time (`token_times`, at `token_offsets`)."""

    batch: SimBatch
    first_token: np.ndarray
    end: np.ndarray
    generated: np.ndarray
    no_fit: np.ndarray
    token_offsets: np.ndarray | None
    token_times: np.ndarray | None
    stopped: str | None = None

    def columns(self) -> Columns:
        done = self.generated >= 0
        failed = self.no_fit.any()
        times = counts = None
        if self.token_times is not None:  # the finished requests' token times (all their slots are filled)
            slots = np.maximum(self.batch.output, 1)
            times = self.token_times[np.repeat(done, slots)]
            counts = np.where(done, self.generated, 0)
        return Columns(sent=self.batch.arrival, first_token=self.first_token, end=self.end,
                       output_tokens=np.where(done, self.generated, np.nan),
                       input_tokens=self.batch.prompt.astype(float),
                       error=np.where(self.no_fit, NO_FIT, None) if failed else None,
                       token_times=times, token_counts=counts,
                       sources={"projected": int((done & ~self.no_fit).sum())} if done.any() else {})

    def records(self) -> SimRecords:
        b, out = self.batch, SimRecords()
        for i in range(len(b.arrival)):
            a = float(b.arrival[i])
            r = RequestRecord(request_id=f"sim-{i}", index=i, warmup=False, scheduled_s=a, sent_s=a,
                              input_tokens=int(b.prompt[i]), token_count_source="projected",
                              prefix_group=None if b.group[i] < 0 else int(b.group[i]))
            if not math.isnan(self.first_token[i]):
                r.first_token_s = float(self.first_token[i])
            if self.no_fit[i]:
                r.error, r.end_s = NO_FIT, float(self.end[i])
            elif self.generated[i] >= 0:
                r.end_s, r.output_tokens, r.finish_reason = float(self.end[i]), int(self.generated[i]), "length"
            if self.token_times is not None:
                start = self.token_offsets[i]
                count = int(self.generated[i]) if self.generated[i] >= 0 else 0
                r.token_times_s = self.token_times[start:start + count].tolist()
                r.chunk_tokens = [1] * count
            out.append(r)
        out.stopped = self.stopped
        return out


NO_FIT = "projected: request does not fit the KV cache"


def run_batch(batch: SimBatch, step: StepModel, config: SchedulerConfig, token_times: bool = True,
              ttft_lost: tuple[float, int] | None = None) -> SimResult:
    """`token_times=False` records first token, end and count only (TPOT, TTFT and e2e need no more; ITL does).
    `ttft_lost=(bound_s, allowed)` ends the run once more than `allowed` requests have waited longer than `bound_s`
    for their first token (counting those still waiting): the percentile it guards is lost whatever follows, as the
    measured probes' guard decides."""
    order = np.argsort(batch.arrival, kind="stable")
    arrival, prompt = batch.arrival[order], batch.prompt[order]
    output, group = batch.output[order], batch.group[order]
    n = len(arrival)
    first, end = np.full(n, np.nan), np.full(n, np.nan)
    generated, no_fit = np.full(n, -1, np.int64), np.zeros(n, np.bool_)
    if token_times:  # each request's slots, laid out in the batch's order
        sizes = np.maximum(batch.output, 1)
        offsets = np.zeros(n, np.int64)
        np.cumsum(sizes[:-1], out=offsets[1:])
        times = np.full(int(sizes.sum()), np.nan)
        offsets = offsets[order]
    else:
        offsets, times = np.zeros(0, np.int64), np.zeros(0)
    bound, allowed = ttft_lost if ttft_lost is not None else (-1.0, 0)
    lost = run_schedule(arrival, prompt, output, group, int(batch.prefix_tokens), int(config.max_num_seqs),
                        int(config.max_num_batched_tokens), int(config.kv_capacity_tokens),
                        bool(config.enable_prefix_caching), int(config.block_size), np.asarray(step.coef, dtype=float),
                        bool(token_times), float(bound), int(allowed), first, end, generated, no_fit, offsets, times)
    back = np.empty(n, np.int64)  # from arrival order to the batch's order
    back[order] = np.arange(n)
    result = SimResult(batch, first[back], end[back], generated[back], no_fit[back],
                       offsets[back] if token_times else None, times if token_times else None)
    if lost >= 0:
        result.stopped = (f"SLO already lost: {lost} requests over the TTFT bound {bound * 1e3:g} ms "
                          f"(allowed {allowed})")
    return result


def simulate(requests: list[SimRequest], step: StepModel, config: SchedulerConfig, token_times: bool = True,
             ttft_lost: tuple[float, int] | None = None) -> SimRecords:
    """The simulation as per-request records, like a measured run's (see `run_batch`)."""
    return run_batch(SimBatch.of(requests), step, config, token_times, ttft_lost).records()
