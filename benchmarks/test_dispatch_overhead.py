"""What sending a trial to a Ray node costs, against evaluating the same trial in this process. A local Ray cluster
(a head and one node labelled `accelerator_type:L4`) runs the same evaluation code as the driver would
(`evaluate_on_node`: spec, workload and catalog shipped, a scratch store, its files mirrored and returned) on
projected trials of the gpu-placement study, so the evaluation is identical work on both sides and the difference is
the dispatch: scheduling, serialisation, the node's scratch store and the copy of its records. A measured trial on a
GPU runs for minutes; the target is that dispatch adds under a second to each (and that the first, which starts a
Ray worker and imports infercost there, is reported apart)."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from infercost import api  # noqa: E402
from infercost.cost.catalog import load_catalog  # noqa: E402
from infercost.search.dispatch.node import evaluate_on_node  # noqa: E402
from infercost.search.evaluate import Evaluator  # noqa: E402
from infercost.search.space import enumerate_space  # noqa: E402
from infercost.store import RunStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 10


def test_dispatch_overhead_per_trial(benchmark, tmp_path):
    from ray.cluster_utils import Cluster
    from ray.util.queue import Queue

    study = ROOT / "workloads/studies/gpu-placement.yaml"
    spec = api.study_of(study, ["space.placements.hardware=[L4]", "space.apis=[]"])
    workload = api.study_workload(spec, str(study))
    catalog = load_catalog(())
    configs = [c for c in enumerate_space(spec) if not c.is_api][:TRIALS]

    def payload(cfg):
        return {"spec": spec, "workload": workload, "catalog": catalog, "cfg": cfg, "resource": "accelerator_type:L4",
                "standin": None}

    def here(cfg):
        t0 = time.perf_counter()
        outcome = asyncio.run(Evaluator(spec, workload, RunStore(tmp_path / "here"), catalog).evaluate(cfg))
        return time.perf_counter() - t0, outcome

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=1, resources={"accelerator_type:L4": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        queue = Queue(actor_options={"num_cpus": 0})
        remote = ray.remote(max_retries=0)(
            lambda p, q, tag: evaluate_on_node(p, lambda rel, data: q.put((tag, rel, data))))
        options = {"resources": {"accelerator_type:L4": 1.0}, "num_cpus": 1}

        def on_node(cfg):
            t0 = time.perf_counter()
            result = ray.get(remote.options(**options).remote(payload(cfg), queue, "bench"))
            for rel, data in result["files"].items():  # what the driver does with a node's records
                path = tmp_path / "nodes" / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            return time.perf_counter() - t0, result

        def both():
            rows = []
            for cfg in configs:
                local_s, outcome = here(cfg)
                remote_s, result = on_node(cfg)
                rows.append((local_s, remote_s, outcome.status, result["outcome"]))
            return rows

        first_s, _ = on_node(configs[0])  # a Ray worker starts and imports infercost on the node
        rows = benchmark.pedantic(both, rounds=1, iterations=1)
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert all(status in r for _, _, status, r in rows)  # the same verdicts on both sides
    local = [r[0] for r in rows]
    remote = [r[1] for r in rows]
    overhead = [b - a for a, b in zip(local, remote)]
    median = statistics.median(overhead)
    benchmark.extra_info.update(trials=len(rows), first_dispatch_s=round(first_s, 2),
                                local_median_s=round(statistics.median(local), 3),
                                remote_median_s=round(statistics.median(remote), 3),
                                overhead_median_s=round(median, 3), overhead_max_s=round(max(overhead), 3))
    print(f"\ndispatch: {len(rows)} projected trials; in-process median {statistics.median(local) * 1e3:.0f} ms, "
          f"on a Ray node median {statistics.median(remote) * 1e3:.0f} ms; overhead per trial median "
          f"{median * 1e3:.0f} ms, max {max(overhead) * 1e3:.0f} ms; first dispatch (worker start) {first_s:.2f} s")
    assert median < 1.0
