"""The parts of cluster dispatch that need no cluster: which Ray resources a placement asks for, which placements a
cluster cannot take and why, the one-line errors of `--executor`, `--address` and the stand-in variable, and the
driver's loop spending its budget on distinct configurations (on a Ray instance of this process's own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infercost.search.dispatch.cluster import Inventory, Placement, labels

ROOT = Path(__file__).resolve().parents[1]


def node(node_id: str, **resources: float) -> dict:
    return {"NodeID": node_id, "Alive": True, "NodeManagerHostname": f"host-{node_id}",
            "NodeManagerAddress": "10.0.0.1", "Resources": resources}


CLUSTER = [node("head", CPU=8),
           node("l4a", CPU=16, GPU=1, **{"accelerator_type:L4": 1}),
           node("l4b", CPU=48, GPU=4, **{"accelerator_type:L4": 1}),
           node("h100", CPU=96, GPU=8, **{"accelerator_type:H100": 1}),
           node("a100x", CPU=96, GPU=8, **{"accelerator_type:A100-80GB": 1, "accelerator_type:A100": 1}),
           {**node("dead", GPU=8, **{"accelerator_type:B200": 1}), "Alive": False}]


def test_a_placement_asks_for_its_accelerator_label_whole_and_its_devices_as_gpus():
    inv = Inventory.of(CLUSTER)
    p = inv.placement("L4", 2)
    assert isinstance(p, Placement) and p.nodes == 1  # only one L4 node has two GPUs
    assert p.options() == {"resources": {"accelerator_type:L4": 1.0}, "num_gpus": 2, "num_cpus": 1}
    # Ray labels an H100 SXM or PCIe card "H100": the family label places both
    assert inv.placement("H100-SXM", 8).resource == "accelerator_type:H100"
    # an operator's exact label wins over the family one
    assert inv.placement("A100-80GB", 1).resource == "accelerator_type:A100-80GB"
    assert labels("A100-40GB") == ["accelerator_type:A100-40GB", "accelerator_type:A100"]


def test_placements_no_live_node_can_take_say_why():
    inv = Inventory.of(CLUSTER)
    assert inv.placement("L4", 8) == "no node with 8x L4 in the cluster (at most 4 on one node)"
    assert inv.placement("B200", 1) == "no node with B200 in the cluster"  # its only node is dead
    assert inv.placement("T4", 1) == "no node with T4 in the cluster"
    assert inv.measuring_nodes() == 4
    assert inv.describe() == "5 node(s): 1 with A100, 1 with A100-80GB, 1 with H100, 2 with L4"


def test_a_stand_in_needs_no_gpus():
    inv = Inventory.of([node("cpu", CPU=1, **{"accelerator_type:L4": 1})], standin=True)
    assert inv.placement("L4", 4).num_gpus == 0


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "infercost", "optimize", str(ROOT / "workloads/studies/demo.yaml"),
                           *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, env, expected", [
    (["--executor", "slurm"], None, "--executor: unknown executor 'slurm': expected one of local, ray"),
    (["--address", "127.0.0.1:1"], None, "--address: --address is for --executor ray"),
    (["--executor", "ray", "--address", "127.0.0.1:1"], None,
     "--address: cannot reach the Ray cluster: connection refused at ray://127.0.0.1:1: expected the head's address"),
    (["--executor", "ray", "--address", "127.0.0.1:1"], {"INFERCOST_RAY_STANDIN": "{engine: openai"},
     "INFERCOST_RAY_STANDIN: not JSON (Expecting property name enclosed in double quotes at character 1)"),
])
def test_bad_executor_input_is_one_line(args, env, expected, tmp_path):
    pytest.importorskip("ray")
    out = run(*args, "--results-dir", str(tmp_path), env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"infercost: error: {expected}"), out.stderr


def test_without_ray_the_executor_is_one_line(monkeypatch):
    from infercost.errors import InputError
    from infercost.search.dispatch import executor_for

    monkeypatch.setitem(sys.modules, "ray", None)  # as on a machine without the extra
    with pytest.raises(InputError, match=r"^--executor: the ray executor needs Ray: pip install 'infercost\[ray\]'$"):
        executor_for("ray")


def test_the_ray_driver_spends_its_budget_on_distinct_configurations(tmp_path):
    """A projected study runs its trials in the driver: three configurations and a budget of 20 end with each
    evaluated once, the other proposals answered from the study, and the loop ended once none is left."""
    pytest.importorskip("ray")
    from infercost import api
    from infercost.search.space import enumerate_space
    from infercost.search.study import STALL, evaluated_trials, is_repeat

    from test_search import TINY, spec_and_evaluator

    spec, evaluator = spec_and_evaluator(tmp_path, space=TINY, n_trials=20, baseline=None)
    found = api.optimize(spec, storage=f"sqlite:///{tmp_path / 's.db'}", results_dir=tmp_path, executor="ray")
    study = found.optuna_study
    keys = sorted(t.user_attrs["config_key"] for t in evaluated_trials(study))
    assert keys == sorted(c.key() for c in enumerate_space(spec, evaluator.pricing_offered)) and len(keys) == 3
    trials = study.get_trials()
    assert found.trials == 3 and found.answered_from_study == len(trials) - 3
    assert all(is_repeat(t) for t in trials[-STALL:]) and all(t.state.is_finished() for t in trials)
