"""The continuous-batching scheduler of `simulate`, as one compiled loop over arrays. A projected study runs
thousands of capacity probes of up to tens of thousands of requests each; stepping them in Python objects took
about 10 µs per request, compiled it takes well under one. Numba compiles it once per machine (cached); where numba
is missing, the same code runs as plain Python, slower and with the same figures.

Requests come in arrival order. Outputs per request: first token and end times (NaN: none), tokens generated
(-1: unfinished), whether it could never fit the KV cache, and, with `token_times`, every token's time."""

from __future__ import annotations

import numpy as np

from infercost.projection.steptime import step_seconds

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba ships with vLLM; without it the loop runs uncompiled
    njit = None


def _compiled(f):
    """Compiled once and cached beside the module (or in the user's cache); where no cache can be written, compiled
    in each process (about 2 s); without numba, plain Python."""
    if njit is None:
        return f
    try:
        return njit(cache=True, nogil=True)(f)
    except RuntimeError:  # numba found no writable place for its cache
        return njit(nogil=True)(f)


_step_time = _compiled(step_seconds)  # the StepModel's own formula, compiled


@_compiled
def run_schedule(arrival, prompt, output, group, prefix_tokens, max_num_seqs, max_batched, kv_capacity,
                 prefix_caching, block_size, coef, token_times, bound, allowed, first, end, generated_out, no_fit,
                 token_offsets, times):
    """Fills `first`, `end`, `generated_out`, `no_fit` and (with `token_times`) `times` at `token_offsets`.
    `bound` < 0: no TTFT guard. Returns the requests over the TTFT bound when the guard stopped the run, else -1."""
    n = arrival.shape[0]
    computed = np.zeros(n, np.int64)
    generated = np.zeros(n, np.int64)
    cap = min(max_num_seqs, n) + 1
    running = np.empty(cap, np.int64)
    sched = np.empty(cap, np.int64)
    sched_n = np.empty(cap, np.int64)
    n_groups = 1
    for i in range(n):
        if group[i] + 1 > n_groups:
            n_groups = group[i] + 1
    seen = np.zeros(n_groups, np.bool_)
    next_arrival = 0  # requests [w_head, next_arrival) wait, in arrival order
    w_head = 0
    n_run = 0
    kv_used = 0
    now = 0.0
    late = 0
    prefilling = 0
    guarded = bound >= 0
    while next_arrival < n or w_head < next_arrival or n_run > 0:
        if guarded:
            waiting_late = 0
            for w in range(w_head, next_arrival):  # oldest first: stop at the first within the bound
                if now - arrival[w] <= bound:
                    break
                waiting_late += 1
            if late + waiting_late > allowed:
                return late + waiting_late
        while next_arrival < n and arrival[next_arrival] <= now:
            next_arrival += 1
        if w_head == next_arrival and n_run == 0:
            now = arrival[next_arrival]
            continue
        budget = max_batched
        if not token_times and n_run > 0 and prefilling == 0 and _decode_only(
                n_run, w_head, next_arrival, budget, kv_used, prompt, output, max_num_seqs, kv_capacity):
            now = _fast_forward(running, n_run, computed, generated, output, coef, now,
                                arrival[next_arrival] if next_arrival < n else -1.0, end, generated_out)
            n_run, freed = _drop_finished(running, n_run, generated_out, prompt, output)
            kv_used -= freed
            continue
        n_sched = 0
        for k in range(n_run):
            if budget <= 0:
                break
            s = running[k]
            m = 1 if computed[s] >= prompt[s] else min(prompt[s] - computed[s], budget)
            sched[n_sched] = s
            sched_n[n_sched] = m
            n_sched += 1
            budget -= m
        while w_head < next_arrival and budget > 0 and n_run < max_num_seqs:
            s = w_head
            need = prompt[s] + output[s]
            if kv_used + need > kv_capacity:
                if n_run == 0 and n_sched == 0:  # can never fit: fail it rather than wait forever
                    w_head += 1
                    no_fit[s] = True
                    end[s] = now
                    continue
                break
            w_head += 1
            g = group[s]
            if prefix_caching and g >= 0 and seen[g]:
                computed[s] = min(prefix_tokens // block_size * block_size, prompt[s] - 1)
            if g >= 0:
                seen[g] = True
            kv_used += need
            running[n_run] = s
            n_run += 1
            prefilling += 1
            m = min(prompt[s] - computed[s], budget)
            sched[n_sched] = s
            sched_n[n_sched] = m
            n_sched += 1
            budget -= m
        if n_sched == 0:  # waiting for KV space that only a finishing sequence frees: cannot happen with running
            if next_arrival < n:
                now = arrival[next_arrival]
            continue
        tokens = 0
        kv_read = 0
        pairs = 0.0
        for k in range(n_sched):
            s = sched[k]
            m = sched_n[k]
            context = computed[s] + generated[s]
            tokens += m
            kv_read += context
            pairs += float(m * context) + m * (m + 1) / 2
        now += _step_time(coef, n_sched, tokens, kv_read, pairs)
        any_finished = False
        for k in range(n_sched):
            s = sched[k]
            if computed[s] < prompt[s]:
                computed[s] += sched_n[k]
                if computed[s] < prompt[s]:
                    continue  # more prompt chunks to go
                prefilling -= 1
            generated[s] += 1
            if np.isnan(first[s]):
                first[s] = now
                if guarded and now - arrival[s] > bound:
                    late += 1
            if token_times:
                times[token_offsets[s] + generated[s] - 1] = now
            if generated[s] >= output[s]:
                end[s] = now
                generated_out[s] = generated[s]
                any_finished = True
        if any_finished:
            n_run, freed = _drop_finished(running, n_run, generated_out, prompt, output)
            kv_used -= freed
    return -1


@_compiled
def _drop_finished(running, n_run, generated_out, prompt, output):
    """Removes the finished sequences from `running`, keeping the others' order; returns their count and the KV
    tokens the finished ones free."""
    kept = 0
    freed = 0
    for k in range(n_run):
        s = running[k]
        if generated_out[s] >= 0:
            freed += prompt[s] + output[s]
        else:
            running[kept] = s
            kept += 1
    return kept, freed


@_compiled
def _decode_only(n_run, w_head, next_arrival, budget, kv_used, prompt, output, max_num_seqs, kv_capacity):
    """Whether the next steps only decode the running sequences (every one is past its prompt), one token each,
    until one of them finishes or a request arrives: all fit the token budget, and no waiting request can be
    admitted (none waits, or the batch, the budget or the KV cache is full, which only a finish changes)."""
    if n_run > budget:
        return False
    if w_head == next_arrival or n_run >= max_num_seqs or budget - n_run <= 0:
        return True
    return kv_used + prompt[w_head] + output[w_head] > kv_capacity


@_compiled
def _fast_forward(running, n_run, computed, generated, output, coef, now, next_arrival, end, generated_out):
    """Decode-only steps without visiting each sequence per step: the same step times, summed in the same order,
    until the first sequence finishes or the next request has arrived (`next_arrival` < 0: none comes)."""
    context = 0
    steps = -1
    for k in range(n_run):
        s = running[k]
        context += computed[s] + generated[s]
        left = output[s] - generated[s]
        if steps < 0 or left < steps:
            steps = left
    done = 0
    while done < steps:
        kv_read = context + done * n_run
        now += _step_time(coef, n_run, n_run, kv_read, float(kv_read + n_run))
        done += 1
        if next_arrival >= 0 and next_arrival <= now:
            break
    for k in range(n_run):
        s = running[k]
        generated[s] += done
        if generated[s] >= output[s]:
            end[s] = now
            generated_out[s] = generated[s]
    return now
