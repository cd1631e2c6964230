"""The vocabulary is the one list each rule reads: what the spec models accept must be exactly what it names."""

import pytest

from infercost.spec.deployment import TransformersDeployment, VllmDeployment
from infercost.spec.vocabulary import (
    CONCRETE_DTYPES,
    DTYPES,
    ENGINE_PRECISIONS,
    PER_REQUEST_SLO_METRICS,
    SLO_METRICS,
    STANDARD_STATS,
    TRANSFORMERS_QUANTIZATIONS,
    is_stat,
    percentile,
    stat_order,
)
from infercost.spec.workload import SLO


def test_the_slo_bounds_exactly_the_slo_metrics():
    assert set(SLO.model_fields) - {"max_error_rate"} == set(SLO_METRICS)
    assert set(PER_REQUEST_SLO_METRICS) <= set(SLO_METRICS)


def test_dtypes_and_precisions_agree():
    assert set(CONCRETE_DTYPES) == set(DTYPES) - {"auto"}
    assert set(ENGINE_PRECISIONS["transformers"]) == set(TRANSFORMERS_QUANTIZATIONS)
    assert set(CONCRETE_DTYPES) <= set(ENGINE_PRECISIONS["vllm"])
    for dtype in DTYPES:
        VllmDeployment(engine="vllm", model="m", dtype=dtype)
    for method in TRANSFORMERS_QUANTIZATIONS:
        TransformersDeployment(engine="transformers", model="m", quantization=method)


@pytest.mark.parametrize("name, expected", [("p50", 50.0), ("p95", 95.0), ("p99.9", 99.9), ("max", 100.0),
                                            ("mean", None)])
def test_percentile(name, expected):
    assert percentile(name) == expected


@pytest.mark.parametrize("name", ["p100", "p", "median", "P95", "95", "p9x"])
def test_unknown_statistics(name):
    assert not is_stat(name)
    with pytest.raises(ValueError, match="unknown statistic"):
        percentile(name)


def test_statistics_sort_percentiles_then_mean_then_max():
    assert all(is_stat(s) for s in STANDARD_STATS)
    assert sorted(["max", "p99.9", "mean", "p5", "p50"], key=stat_order) == ["p5", "p50", "p99.9", "mean", "max"]
