"""No wasted trials: the budget buys distinct evaluations (a proposal of an evaluated configuration is answered from
the study, uses no budget and is not listed), and the space holds only placements the catalog prices. On the shipped
gpu-placement study (projected, seconds) and on real Optuna studies, with the shipped catalog."""

from __future__ import annotations

import subprocess
import sys

import optuna
import yaml

from infercost import api
from infercost.cost.catalog import load_catalog
from infercost.search.evaluate import Evaluator
from infercost.search.results import trials_frame
from infercost.search.space import enumerate_space, params_for, suggest
from infercost.search.study import evaluated_trials, is_repeat, outcomes
from infercost.spec import load_workload
from infercost.store import RunStore

from conftest import WORKLOADS
from test_search import STUDY, spec_and_evaluator, write_spec

GPU_PLACEMENT = WORKLOADS / "studies" / "gpu-placement.yaml"


def test_a_40_trial_study_holds_40_distinct_configurations(tmp_path):
    spec = api.study_of(str(GPU_PLACEMENT))
    assert spec.n_trials == 40 and spec.mode == "project"
    found = api.optimize(spec, storage=f"sqlite:///{tmp_path / 's.db'}", results_dir=tmp_path)
    study = found.optuna_study
    counted = [t.user_attrs["config_key"] for t in evaluated_trials(study)]
    assert len(counted) == len(set(counted)) == 40
    rows = outcomes(study)
    assert sorted(o.config.key() for _, o in rows) == sorted(counted)  # the log: each configuration once
    assert len(trials_frame(study)) == 40 and found.trials == 40
    trials = study.get_trials()
    repeats = [t for t in trials if is_repeat(t)]
    assert found.answered_from_study == len(repeats) == len(trials) - 40
    by_number = {t.number: t for t in trials}
    for t in repeats:  # answered by the trial that evaluated the same configuration
        assert by_number[t.user_attrs["reused_from"]].user_attrs["config_key"] == t.user_attrs["config_key"]
    assert not [t for t in trials if (t.user_attrs.get("reason") or "").startswith("no catalog offer")]


def _without_spot_for(accelerator: str, tmp_path, **changes):
    """A study over H100-SXM, A100-80GB and L4, on-demand and spot, priced on the shipped catalog with `accelerator`'s
    spot prices taken out."""
    placements = {"hardware": ["H100-SXM", "A100-80GB", "L4"], "devices": [1, 2], "pricing": ["on_demand", "spot"]}
    spec, ev = spec_and_evaluator(tmp_path, baseline=None, space={**STUDY["space"], "placements": placements},
                                  **changes)
    catalog = load_catalog()
    ev = Evaluator(spec, ev.workload, RunStore(tmp_path / "priced"), catalog.model_copy(update={"offers": [
        o.model_copy(update={"spot_hourly": None}) if o.accelerator == accelerator else o for o in catalog.offers]}))
    return spec, ev


NAMES = {"H100-SXM": {"hardware", "devices", "pricing[on_demand]"},  # its spot prices taken out
         "A100-80GB": {"hardware", "devices", "pricing"},
         "L4": {"hardware", "devices[1]", "pricing"}}  # no offer in the catalog hosts two L4s


def test_the_space_holds_only_placements_the_catalog_prices(tmp_path):
    spec, ev = _without_spot_for("H100-SXM", tmp_path)
    offered = ev.pricing_offered
    assert offered("H100-SXM", 1) == ["on_demand"] and offered("A100-80GB", 1) == ["on_demand", "spot"]
    configs = enumerate_space(spec, offered)
    placed = {(c.hardware, c.devices, c.pricing) for c in configs}
    assert placed == {(h, d, t) for h in ("H100-SXM", "A100-80GB", "L4") for d in (1, 2) for t in offered(h, d)}
    assert not [c for c in configs if c.hardware == "H100-SXM" and c.pricing == "spot"]
    assert ("H100-SXM", 2, "on_demand") in placed and ("A100-80GB", 2, "spot") in placed

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    keys = {c.key() for c in configs}
    drawn = set()
    for _ in range(400):
        trial = study.ask()
        cfg = suggest(trial, spec, offered)
        assert cfg.key() in keys, cfg.label()  # never spot on an H100, never a placement nobody sells
        drawn.add((cfg.hardware, cfg.devices, cfg.pricing))
        # a pruned choice set has a parameter of its own, named after its choices; the others keep their names
        assert {k for k in trial.params if k.split("[")[0] in ("hardware", "devices", "pricing")} == NAMES[cfg.hardware]
        study.tell(trial, 1.0)
    assert drawn == placed

    for cfg in configs:  # params_for is the inverse of suggest
        study.enqueue_trial(params_for(cfg, spec, offered=offered))
        assert suggest(study.ask(), spec, offered) == cfg


def test_an_unpruned_space_keeps_its_parameters(tmp_path):
    """Where the catalog prices every placement, the space and its parameter names are as without the catalog: a
    seeded study draws what it drew before."""
    spec, ev = spec_and_evaluator(tmp_path, baseline=None, space={
        **STUDY["space"], "placements": {"hardware": ["H100-SXM", "A100-80GB"], "devices": [1, 2],
                                         "pricing": ["on_demand"]}})
    assert enumerate_space(spec, ev.pricing_offered) == enumerate_space(spec)
    draws = []
    for offered in (None, ev.pricing_offered):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        draws.append([(suggest(t := study.ask(), spec, offered), t.params) for _ in range(20)])
    assert draws[0] == draws[1]
    assert {"hardware", "devices", "pricing"} <= set(draws[0][0][1])


def test_a_study_no_catalog_offer_prices_is_one_line(tmp_path):
    placements = {"hardware": ["H100-SXM", "L4"], "devices": [1, 2], "pricing": ["on_demand"],
                  "providers": ["nobody"]}
    path = write_spec(tmp_path, space={**STUDY["space"], "placements": placements}, baseline=None)
    out = subprocess.run([sys.executable, "-m", "infercost", "optimize", str(path), "--results-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr == (f"infercost: error: {path}: space.placements: no catalog offer prices H100-SXM, L4 on "
                          "on_demand terms with 1 or 2 device(s) from nobody: expected accelerators the catalog "
                          "sells (see `infercost catalog list`)\n")
