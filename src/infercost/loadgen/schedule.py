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


def phased_offsets(phases, arrival: str, burstiness: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, phase index of each) for consecutive phases, each at its rate or a linear ramp. Arrivals are drawn
    at unit rate (Poisson, gamma or constant gaps) and mapped through each phase's cumulative rate, so a ramp is a
    non-homogeneous process of the same kind, not a staircase."""
    rng = np.random.default_rng(seed)
    offsets, index, start = [], [], 0.0
    for k, phase in enumerate(phases):
        a, b = phase.rate if isinstance(phase.rate, tuple) else (phase.rate, phase.rate)
        total = (a + b) / 2 * phase.duration_s  # expected arrivals: the cumulative rate at the phase's end
        n = int(total + 6 * math.sqrt(total) + 10)
        if arrival == "constant":
            marks = np.arange(n, dtype=float)
        elif arrival == "gamma":
            marks = np.concatenate([[0.0], np.cumsum(rng.gamma(burstiness, 1 / burstiness, size=n - 1))])
        else:
            marks = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0, size=n - 1))])
        marks = marks[marks < total]
        if a == b:
            t = marks / a
        else:  # invert a*t + (b-a)*t^2 / (2T) = m
            slope = (b - a) / phase.duration_s
            t = (-a + np.sqrt(a * a + 2 * slope * marks)) / slope
        offsets.append(start + t)
        index.append(np.full(len(t), k))
        start += phase.duration_s
    return np.concatenate(offsets), np.concatenate(index).astype(int)
