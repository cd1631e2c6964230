"""Confidence intervals for a run's figures, from its own per-request records. Percentiles get distribution-free
intervals from order statistics (the ranks between which the true quantile lies with the stated probability: no
assumption about the latency distribution's shape); means and rates are bootstrapped over requests with a fixed
seed, so the same records always give the same interval. Run-to-run noise (a different machine state, a different
arrival draw) is not in these: repeats measure it."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 2000
SEED = 0
LARGE_SAMPLE = 5000  # above this, normal approximations (binomial ranks, the mean's standard error) are exact enough
Z = {0.9: 1.6449, 0.95: 1.96, 0.99: 2.5758}

Interval = tuple[float, float]


def _binomial_cdf(n: int, q: float) -> np.ndarray:
    """P(B <= k) for B ~ Binomial(n, q), k = 0..n, in log space (stable for large n)."""
    k = np.arange(n + 1)
    lgamma = np.vectorize(math.lgamma)
    log_pmf = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + k * math.log(q) + (n - k) * math.log1p(-q)
    pmf = np.exp(log_pmf - log_pmf.max())
    return np.cumsum(pmf) / pmf.sum()


def percentile_interval(values: np.ndarray, percentile: float, level: float = LEVEL) -> Interval | None:
    """The interval [x_(l), x_(u)] of order statistics covering the `percentile`-th quantile with probability at
    least `level`. None when there are too few samples for any such pair (e.g. p99 of 50 requests: the top
    sample is not far enough beyond the 99th percentile to bound it)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    q = percentile / 100.0
    if n == 0 or not 0 < q < 1:
        return None
    alpha = (1 - level) / 2
    if n > LARGE_SAMPLE:
        half = Z[level] * math.sqrt(n * q * (1 - q))
        lower, upper = math.floor(n * q - half), math.ceil(n * q + half) + 1
    else:
        cdf = _binomial_cdf(n, q)  # the number of samples below the true quantile is Binomial(n, q)
        lower = int(np.searchsorted(cdf, alpha, side="right"))  # P(B < lower) <= alpha
        upper = int(np.searchsorted(cdf, 1 - alpha, side="left")) + 1  # P(B >= upper) <= alpha
    # x_(lower) <= quantile < x_(upper) (1-based ranks) has probability >= 1 - 2 alpha
    if lower < 1 or upper > n:
        return None
    return float(x[lower - 1]), float(x[upper - 1])


def mean_interval(values: np.ndarray, level: float = LEVEL, resamples: int = BOOTSTRAP_RESAMPLES) -> Interval | None:
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None
    if x.size > LARGE_SAMPLE:
        half = Z[level] * x.std(ddof=1) / math.sqrt(x.size)
        return float(x.mean() - half), float(x.mean() + half)
    rng = np.random.default_rng(SEED)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))


def stat_interval(values: np.ndarray, name: str, level: float = LEVEL) -> Interval | None:
    if name == "mean":
        return mean_interval(values, level)
    if name.startswith("p"):
        return percentile_interval(values, float(name[1:]), level)
    return None


def rate_interval(successes: np.ndarray, duration_s: float, level: float = LEVEL,
                  resamples: int = BOOTSTRAP_RESAMPLES) -> Interval | None:
    """A per-second rate of requests meeting a condition (completed, good), resampling which requests did over the
    run's duration. `successes` holds one 0/1 (or a count, e.g. output tokens) per measured request."""
    s = np.asarray(successes, dtype=float)
    if s.size < 2 or duration_s <= 0:
        return None
    if s.size > LARGE_SAMPLE:
        half = Z[level] * math.sqrt(s.size) * s.std(ddof=1) / duration_s
        return float(s.sum() / duration_s - half), float(s.sum() / duration_s + half)
    rng = np.random.default_rng(SEED)
    totals = s[rng.integers(0, s.size, size=(resamples, s.size))].sum(axis=1) / duration_s
    return float(np.quantile(totals, (1 - level) / 2)), float(np.quantile(totals, (1 + level) / 2))


def spread(values: list[float | None]) -> dict[str, float | None] | None:
    """Run-to-run spread of one figure across repeats: min, max, mean and the coefficient of variation."""
    x = np.array([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return None
    mean = float(x.mean())
    return {"n": int(x.size), "min": float(x.min()), "max": float(x.max()), "mean": mean,
            "cv": float(x.std(ddof=1) / mean) if x.size > 1 and mean else None}


class Confidence(BaseModel):
    """How sure a figure is, in one of three tiers a reviewer can tell apart: proof, a checked estimate, or an
    estimate whose error is assumed."""

    tier: Literal["measured", "calibrated projection", "default projection"]
    level: float | None = None  # measured: the intervals' confidence level
    samples: int | None = None  # measured: requests behind the figure
    runs: int | None = None  # measured: runs at the deciding load (repeats)
    error: float | None = None  # projected: relative error band (leave-one-out validated, or assumed)
    assumed: bool = False  # the error band is a documented assumption, not validated on this hardware
    note: str = ""

    @classmethod
    def measured(cls, samples: int | None, runs: int | None = None, level: float = LEVEL) -> "Confidence":
        return cls(tier="measured", level=level, samples=samples, runs=runs,
                   note=f"measured: {samples or '?'} requests" + (f", {runs} runs at the edge" if runs and runs > 1
                                                                   else "") + f"; {level:.0%} intervals")

    @classmethod
    def projected(cls, error: float, calibrated: bool, source: str = "") -> "Confidence":
        if calibrated:
            return cls(tier="calibrated projection", error=error,
                       note=f"projected; leave-one-out validation error +-{error:.0%} ({source})")
        return cls(tier="default projection", error=error, assumed=True,
                   note=f"projected with an assumed +-{error:.0%} band: not calibrated on this hardware")
