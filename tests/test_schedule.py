"""Arrival schedules: statistical checks on seeded draws (bounds at ~5 standard errors, so a correct generator
fails with negligible probability, and a wrong rate or dispersion fails for certain)."""

import math

import numpy as np
import pytest

from infercost.loadgen.schedule import arrival_offsets, count_for_duration


def test_poisson_rate_and_dispersion():
    rate, n = 20.0, 20000
    t = arrival_offsets("poisson", rate, n, seed=1)
    gaps = np.diff(t)
    assert t[0] == 0 and np.all(gaps >= 0)
    # mean gap 1/rate within 5 standard errors (sd of an exponential gap = its mean)
    assert abs(gaps.mean() - 1 / rate) < 5 * (1 / rate) / math.sqrt(n)
    # exponential gaps: coefficient of variation 1
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)
    # counts in 1-second windows: Poisson, so variance/mean (index of dispersion) ~ 1
    counts = np.bincount(t.astype(int))[:-1]
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.15)


def test_gamma_burstiness_sets_dispersion_not_rate():
    rate = 10.0
    for burstiness in (0.25, 4.0):
        gaps = np.diff(arrival_offsets("gamma", rate, 20000, burstiness=burstiness, seed=2))
        assert gaps.mean() == pytest.approx(1 / rate, rel=0.05)
        assert gaps.std() / gaps.mean() == pytest.approx(1 / math.sqrt(burstiness), rel=0.08)


def test_constant_and_infinite_rate():
    assert np.allclose(np.diff(arrival_offsets("constant", 4.0, 9)), 0.25)
    assert np.all(arrival_offsets("poisson", math.inf, 5) == 0)


def test_seed_reproducible_and_distinct():
    a = arrival_offsets("poisson", 3.0, 50, seed=5)
    assert np.array_equal(a, arrival_offsets("poisson", 3.0, 50, seed=5))
    assert not np.array_equal(a, arrival_offsets("poisson", 3.0, 50, seed=6))


def test_duration_draws_enough_requests():
    rate, duration = 5.0, 60.0
    n = count_for_duration(rate, duration)
    for seed in range(20):
        assert arrival_offsets("poisson", rate, n, seed=seed)[-1] > duration
