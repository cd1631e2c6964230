"""Closed-form estimates, for screening thousands of configurations before any run or simulation: the latency
floors (TTFT at zero load, TPOT at batch 1) and a steady-state throughput bound at the largest batch whose decode
step still meets the TPOT bound. No queueing: a configuration whose floors already break the SLO can be rejected
without running it; the others still need a simulation or a measurement for their capacity."""

from __future__ import annotations

from dataclasses import dataclass

from infercost.projection.memory import MemoryPlan
from infercost.projection.steptime import StepModel


@dataclass(slots=True)
class Estimate:
    fits: bool
    ttft_floor_s: float
    tpot_floor_s: float
    batch: int  # largest batch meeting the TPOT bound (and fitting the KV cache)
    throughput_rps: float  # steady state at that batch, prefills included; an upper bound on capacity


def estimate(step: StepModel, memory: MemoryPlan, prompt_tokens: float, output_tokens: float, max_num_seqs: int,
             tpot_bound_s: float | None = None) -> Estimate:
    ttft = step.prefill_time(int(prompt_tokens))
    context = prompt_tokens + output_tokens / 2
    tpot1 = step.decode_step(1, context)
    if not memory.fits:
        return Estimate(False, ttft, tpot1, 0, 0.0)
    per_seq_tokens = prompt_tokens + output_tokens
    batch = max(1, min(max_num_seqs, int(memory.kv_capacity_tokens // per_seq_tokens)))
    if tpot_bound_s is not None:
        lo, hi = 1, batch  # decode step time grows with batch: bisect for the largest batch within the bound
        if step.decode_step(1, context) > tpot_bound_s:
            return Estimate(True, ttft, tpot1, 0, 0.0)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if step.decode_step(mid, context) <= tpot_bound_s:
                lo = mid
            else:
                hi = mid - 1
        batch = lo
    seconds_per_request = step.decode_step(batch, context) * output_tokens / batch + ttft
    return Estimate(True, ttft, tpot1, batch, 1.0 / seconds_per_request)
