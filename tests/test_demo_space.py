"""The demo study's space is conditional: every configuration in it is one the search can evaluate, none that the
screen or the catalog would reject as meaningless (transformers on a projected GPU, this machine on spot)."""

from pathlib import Path

from conftest import WORKLOADS
from infercost.api import study_of
from infercost.cost.catalog import load_catalog
from infercost.search.evaluate import Evaluator
from infercost.search.space import enumerate_space, params_for
from infercost.spec import load_workload
from infercost.spec.loader import deployment_adapter, validate
from infercost.store import RunStore

DEMO = WORKLOADS / "studies" / "demo.yaml"


def test_the_demo_space_has_no_combination_the_search_rejects(tmp_path: Path):
    spec = study_of(str(DEMO))
    workload = load_workload(spec.resolve(spec.workload))
    evaluator = Evaluator(spec, workload, RunStore(tmp_path), load_catalog())
    configs = enumerate_space(spec)
    assert enumerate_space(spec, evaluator.pricing_offered) == configs  # the catalog prices every placement in it
    assert spec.n_trials == len(configs)  # the grid runs the whole space, once
    assert {c.hardware for c in configs if c.engine == "transformers"} == {"here"}
    assert {c.pricing for c in configs if c.hardware == "here"} == {spec.space.placements.pricing[0]}
    assert {c.pricing for c in configs if c.hardware != "here"} == set(spec.space.placements.pricing)
    assert {(c.engine, c.precision) for c in configs} == {("vllm", "float32"), ("vllm", "bfloat16"),
                                                        ("transformers", "torchao-int8")}
    assert {c.enable_prefix_caching for c in configs} == {True, False}
    for cfg in configs:
        deployment = validate(deployment_adapter(), cfg.deployment(spec.fixed), source=cfg.label())
        assert "gpu_memory_utilization" not in deployment.model_dump(exclude_defaults=True)
        assert evaluator.screen(cfg, evaluator.projector(cfg, deployment)) is None, cfg.label()
        assert params_for(cfg, spec) is not None  # every configuration can be enqueued by its parameters


def test_the_baseline_is_in_the_space():
    from infercost.search.results import baseline_config

    spec = study_of(str(DEMO))
    assert params_for(baseline_config(spec.baseline), spec) is not None


def test_projected_placements_get_a_probe_budget_that_reaches_a_gpus_capacity(tmp_path: Path):
    """The demo's probe budget is sized for measuring here (6 probes); a projected L4 doubling from 1 req/s with that
    budget would stop at 32 and report a floor as its capacity."""
    import asyncio

    spec = study_of(str(DEMO))
    workload = load_workload(spec.resolve(spec.workload))
    evaluator = Evaluator(spec, workload, RunStore(tmp_path), load_catalog())
    cfg = next(c for c in enumerate_space(spec) if c.hardware == "L4" and c.precision == "bfloat16")
    deployment = validate(deployment_adapter(), cfg.deployment(spec.fixed), source=cfg.label())
    projector = evaluator.projector(cfg, deployment)
    assert spec.capacity.max_probes < evaluator.projected_options().max_probes
    result = asyncio.run(projector.capacity(workload, evaluator.lengths(cfg.model), evaluator.projected_options()))
    assert result.status == "found", (result.status, result.reason)
    capped = asyncio.run(projector.capacity(workload, evaluator.lengths(cfg.model), spec.capacity))
    assert capped.status == "probe_limit" and result.capacity_rps > capped.capacity_rps
