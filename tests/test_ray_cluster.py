"""A study measured across a real Ray cluster started in the test: a head and two nodes on loopback, one labelled
`accelerator_type:L4` and one `accelerator_type:H100` (Ray's own labels for those GPUs). The nodes have no GPUs, so
the test-only stand-in (INFERCOST_RAY_STANDIN) measures each "GPU" placement through the real vLLM CPU server on
loopback: every Ray, Optuna and vLLM part is real; only the accelerator under the measurement is not.

Shown: trials dispatched by hardware, one trial per node at a time while different nodes measure together, a
placement no node has projected and labelled, the node of each trial in `infercost trials`, a worker SIGKILLed
mid-trial failing once and being requeued with its partial records kept, and a study whose driver was stopped
(SIGTERM) and then killed (SIGKILL) finishing on the next run with no trial lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("vllm")

ROOT = Path(__file__).resolve().parents[1]
TASK_TITLE = "ray::infercost-trial"


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    l4 = c.add_node(num_cpus=1, resources={"accelerator_type:L4": 1})
    h100 = c.add_node(num_cpus=1, resources={"accelerator_type:H100": 1})
    c.wait_for_nodes()
    try:
        yield {"address": c.address, "L4": l4.node_id, "H100": h100.node_id}
    finally:
        c.shutdown()
        for sig, handler in handlers.items():  # Ray's head installs its own in this process: later tests get ours
            signal.signal(sig, handler)


def write_study(tmp_path: Path, name: str, hardware: list[str], seqs: list[int], pricing: list[str],
                n_trials: int) -> Path:
    (tmp_path / "workload.yaml").write_text(f"""
name: ray-dispatch
tags: {{team: platform}}
api: chat
prompts: {{source: jsonl, path: {ROOT / 'workloads/data/chat_support.jsonl'}}}
sampling: {{max_tokens: 8, temperature: 0.0}}
traffic: {{arrival: poisson, rate: 2.0, num_requests: 8, seed: 7}}
slo: {{ttft_ms: {{p95: 60000}}, e2e_ms: {{p95: 120000}}, max_error_rate: 0.5}}
demand: {{requests_per_day: 20000}}
""")
    study = tmp_path / f"{name}.yaml"
    study.write_text(f"""
name: {name}
workload: workload.yaml
mode: measure
space:
  models: [smollm2-135m-instruct]
  engines: [vllm]
  max_num_seqs: {seqs}
  placements: {{hardware: {hardware}, pricing: {pricing}}}
constraints: {{quality: false, budget: false}}
capacity: {{precision: 0.5, tail_samples: 1, min_requests: 6, min_duration_s: 1, max_probes: 3, start: 1}}
sampler: grid
n_trials: {n_trials}
""")
    return study


def optimize_cmd(study: Path, results: Path, cluster: dict, storage: str | None = None) -> list[str]:
    return [sys.executable, "-m", "infercost", "optimize", str(study), "--executor", "ray", "--address",
            cluster["address"], "--results-dir", str(results), "--json", "--quiet",
            *(["--storage", storage] if storage else [])]


def standin_env(url: str) -> dict[str, str]:
    return {**os.environ, "INFERCOST_RAY_STANDIN": json.dumps({"engine": "openai", "model": "smollm2",
                                                                "base_url": url})}


def stored_trials(results: Path, name: str, storage: str | None = None) -> list:
    import optuna

    storage = storage or f"sqlite:///{results / 'studies' / f'{name}.db'}"
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def task_pids() -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().split(b"\0")[0].decode().startswith(TASK_TITLE):
                    out.append(int(proc.name))
            except OSError:
                continue
    return out


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_trials_go_to_the_nodes_with_their_accelerator(cluster, vllm_server, tmp_path):
    study = write_study(tmp_path, "fleet", ["L4", "H100-SXM", "A100-80GB"], [4, 8], ["on_demand", "spot"], 12)
    results = tmp_path / "results"
    started = time.monotonic()
    out = subprocess.run(optimize_cmd(study, results, cluster), capture_output=True, text=True, timeout=900,
                         env=standin_env(vllm_server))
    wall = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads(subprocess.run(
        [sys.executable, "-m", "infercost", "trials", str(study), "--results-dir", str(results), "--json"],
        capture_output=True, text=True, check=True).stdout)
    assert len(rows) == 12
    outcomes = {t.number: t.user_attrs["outcome"] for t in stored_trials(results, "fleet") if "outcome" in t.user_attrs}

    remote = [o for o in outcomes.values() if o["config"]["hardware"] in ("L4", "H100-SXM")]
    assert len(remote) == 8 and all(o["kind"] == "measured" and o["status"] == "feasible" for o in remote)
    for o in remote:  # dispatched by hardware: each measured on the node carrying its accelerator's label
        want = "L4" if o["config"]["hardware"] == "L4" else "H100"
        assert o["node"]["resource"] == f"accelerator_type:{want}" and o["node"]["node_id"] == cluster[want]
        assert o["node"]["standin"].startswith("openai smollm2 at") and o["cost"]["accelerator"] == o["config"][
            "hardware"]
        assert Path(o["evidence"], "capacity.json").is_file()  # the node's records, with the driver
    # one capacity search per configuration and node; its other pricing model reuses it
    measured_here = [o for o in remote if o["dispatch"].startswith("measured on")]
    assert len(measured_here) == 4
    assert all(o["dispatch"].startswith("capacity measured on") for o in remote if o not in measured_here)

    # one trial per node at a time; the two nodes measured together
    spans = {want: sorted((datetime.fromisoformat(o["node"]["started_at"]), datetime.fromisoformat(
        o["node"]["ended_at"])) for o in measured_here if o["node"]["resource"].endswith(want)) for want in
        ("L4", "H100")}
    for node_spans in spans.values():
        assert len(node_spans) == 2 and node_spans[0][1] <= node_spans[1][0]
    assert any(a0 < b1 and b0 < a1 for a0, a1 in spans["L4"] for b0, b1 in spans["H100"])
    busy = sum(o["node"]["seconds"] for o in measured_here)
    assert wall < busy + 60, (wall, busy)

    # a placement no node has: projected, and labelled as such
    a100 = [o for o in outcomes.values() if o["config"]["hardware"] == "A100-80GB"]
    assert len(a100) == 4 and all(o["kind"] == "projected" and o["node"] is None for o in a100)
    assert all(o["dispatch"] == "projected: no node with A100-80GB in the cluster" for o in a100)

    # `infercost trials` names the node of each measured trial
    table = subprocess.run([sys.executable, "-m", "infercost", "trials", str(study), "--results-dir", str(results)],
                           capture_output=True, text=True, check=True).stdout
    assert "node" in table.splitlines()[0] and table.count("L4 (stand-in)") == 4 and table.count(
        "H100 (stand-in)") == 4


def test_a_worker_killed_mid_trial_is_requeued_with_its_partial_records(cluster, vllm_server, tmp_path):
    """On the PostgreSQL server `.ci/run` starts, when there is one: the storage a cluster would use."""
    storage = os.environ.get("INFERCOST_TEST_POSTGRES")
    name = f"killed-worker-{os.getpid()}-{time.time_ns()}"  # a shared server keeps studies of earlier runs
    study = write_study(tmp_path, name, ["L4"], [4], ["on_demand"], 1)
    results = tmp_path / "results"
    driver = subprocess.Popen(optimize_cmd(study, results, cluster, storage), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=standin_env(vllm_server))
    try:
        pid = wait_for(task_pids, 120, "the trial's Ray worker")[0]
        partial = results / "studies" / name / "nodes" / "trial-0"
        wait_for(lambda: any(p.name == "requests.jsonl" for p in partial.rglob("*")), 120,
                 "the first probe's records at the driver")
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=600)
    finally:
        driver.kill()
    assert driver.returncode == 0, stderr[-3000:]
    trials = stored_trials(results, name, storage)
    failed = [t for t in trials if t.state.name == "FAIL"]
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(failed) == 1 and len(done) == 1 and len(trials) == 2
    assert "Worker" in failed[0].user_attrs["lost"] or "died" in failed[0].user_attrs["lost"]
    kept = Path(failed[0].user_attrs["partial_records"])
    assert kept == partial and any(p.name == "requests.jsonl" for p in kept.rglob("*"))
    assert done[0].params == failed[0].params  # the same configuration, measured again
    outcome = done[0].user_attrs["outcome"]
    assert outcome["kind"] == "measured" and outcome["node"]["node_id"] == cluster["L4"]
    assert json.loads(stdout)["trials"] == 1


def test_a_stopped_or_killed_driver_leaves_a_study_that_resumes(cluster, vllm_server, tmp_path):
    study = write_study(tmp_path, "resumed", ["L4", "H100-SXM"], [4], ["on_demand"], 2)
    results = tmp_path / "results"
    env = standin_env(vllm_server)

    # SIGTERM (as Ctrl-C): the remote tasks are cancelled, their trials failed and queued again
    driver = subprocess.Popen(optimize_cmd(study, results, cluster), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    wait_for(task_pids, 120, "a trial's Ray worker")
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr[-2000:]
    wait_for(lambda: not task_pids(), 60, "the remote tasks to be cancelled")
    trials = stored_trials(results, "resumed")
    stopped = [t for t in trials if t.state.name == "FAIL"]
    assert stopped and all(t.user_attrs.get("interrupted") for t in stopped)
    assert len([t for t in trials if t.state.name == "WAITING"]) == len(stopped)  # queued for the next run

    # SIGKILL: nothing runs on the way out; the next run finds the trials stale and queues them again
    driver = subprocess.Popen(optimize_cmd(study, results, cluster), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    wait_for(task_pids, 120, "a trial's Ray worker")
    time.sleep(3)  # a heartbeat or two
    driver.kill()
    driver.wait()
    wait_for(lambda: not task_pids(), 60, "Ray to end the dead driver's tasks")
    time.sleep(7)  # past the heartbeat's grace period

    out = subprocess.run(optimize_cmd(study, results, cluster), capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    trials = stored_trials(results, "resumed")
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 2 and not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    keys = [t.user_attrs["config_key"] for t in done]
    assert len(set(keys)) == 2  # every configuration once: none lost, none duplicated
    assert {t.user_attrs["outcome"]["node"]["resource"] for t in done} == {"accelerator_type:L4",
                                                                           "accelerator_type:H100"}
