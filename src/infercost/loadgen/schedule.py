"""Arrival schedules drawn up front, so the send time of a request never depends on how fast earlier ones finished
(no coordinated omission)."""

from __future__ import annotations

import math

import numpy as np


def arrival_offsets(arrival: str, rate: float, n: int, *, burstiness: float = 1.0, seed: int = 0) -> np.ndarray:
    """Seconds from the start of the run at which each of `n` requests is due.

    poisson: exponential gaps with mean 1/rate. gamma: gaps ~ Gamma(shape=burstiness, scale=1/(rate*burstiness)),
    the same mean, a coefficient of variation of 1/sqrt(burstiness) (vLLM's definition). constant: exactly 1/rate.
    rate = inf sends everything at t=0. The first request is due at t=0 in every case.
    """
    if n <= 0:
        return np.zeros(0)
    if math.isinf(rate):
        return np.zeros(n)
    rng = np.random.default_rng(seed)
    if arrival == "constant":
        gaps = np.full(n - 1, 1.0 / rate)
    elif arrival == "poisson":
        gaps = rng.exponential(1.0 / rate, size=n - 1)
    elif arrival == "gamma":
        gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n - 1)
    else:
        raise ValueError(f"not an open-loop arrival process: {arrival}")
    return np.concatenate([[0.0], np.cumsum(gaps)])


def count_for_duration(rate: float, duration_s: float) -> int:
    """How many requests an open-loop schedule needs to cover `duration_s` (drawn generously, then cut by time)."""
    if math.isinf(rate):
        raise ValueError("a duration needs a finite rate")
    expected = rate * duration_s
    return int(expected + 6 * math.sqrt(expected) + 10)
