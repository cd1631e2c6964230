"""The shipped vLLM CPU deployment on a machine with little memory to spare, whatever this machine's size: a ballast
process holds memory until only about 6 GiB stay available on the NUMA node vLLM uses, then `infercost run` must
either start the engine and measure, or report the deployment infeasible in one line, with no traceback."""

import os
import subprocess
import sys
import time

import pytest

from conftest import WORKLOADS
from infercost.engines.machine import host_memory
from infercost.store import load_run

pytest.importorskip("vllm")
pytestmark = pytest.mark.engine

LEFT_AVAILABLE = 6 * 2**30
# Grows in steps, re-reading the node each time: on virtual machines whose memory is hot-plugged, a node's total
# grows as memory is taken, so one allocation sized from the first reading would leave far more than 6 GiB.
BALLAST = """
import sys, time
import numpy as np
import psutil
from infercost.engines.machine import host_memory
target, step, blocks = int(sys.argv[1]), 256 * 2**20, []
while host_memory().available_bytes > target and psutil.virtual_memory().available > target + step:
    block = np.empty(step, dtype=np.uint8)
    block[::4096] = 1  # touch every page, so the memory is really held
    blocks.append(block)
print(len(blocks) * step, flush=True)
time.sleep(3600)
"""


@pytest.fixture
def ballast():
    """A process holding all but ~6 GiB of what the node has available (nothing where it has less already)."""
    proc = subprocess.Popen([sys.executable, "-c", BALLAST, str(LEFT_AVAILABLE)], stdout=subprocess.PIPE, text=True)
    try:
        held = int(proc.stdout.readline().strip())
        time.sleep(1)
        yield held
    finally:
        proc.kill()
        proc.wait()


def test_the_shipped_deployment_starts_or_is_infeasible_in_one_line_with_6_gib_available(ballast, tmp_path):
    available = host_memory().available_bytes
    assert available < LEFT_AVAILABLE + 2**30 or ballast == 0
    proc = subprocess.run(
        [sys.executable, "-m", "infercost", "run", str(WORKLOADS / "chat-support.yaml"),
         "-d", str(WORKLOADS / "deployments/smollm2-vllm-cpu.yaml"),
         "--workload-set", "traffic.num_requests=8", "--workload-set", "traffic.warmup_requests=0",
         "--results-dir", str(tmp_path), "-q"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, COLUMNS="400"),
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    run = load_run(next(tmp_path.iterdir()))
    plan = run.manifest["engine"]["memory_plan"]
    assert plan["available_bytes"] <= available + 2**30  # the plan saw the squeezed node, not the machine
    if proc.returncode == 0:
        assert run.manifest["status"] == "completed"
        assert run.summary["completed"] == 8
        assert plan["fits"] and plan["needed_bytes"] <= plan["available_bytes"]
        assert run.manifest["engine"]["engine_args"]["kv_cache_memory_bytes"] == plan["kv_cache_bytes"]
    else:
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert run.manifest["status"] == "infeasible"
        lines = [line for line in proc.stdout.splitlines() if "infeasible" in line]
        assert len(lines) == 1 and "does not fit in memory: needs" in lines[0], proc.stdout
        assert not plan["fits"] and not (run.directory / "engine.log").exists()  # no engine was started


def test_a_cache_larger_than_the_node_is_infeasible_in_one_line_and_no_engine_starts(tmp_path):
    too_big = 2 * host_memory().total_bytes  # more than this node has, whatever the machine
    proc = subprocess.run(
        [sys.executable, "-m", "infercost", "run", str(WORKLOADS / "chat-support.yaml"),
         "-d", str(WORKLOADS / "deployments/smollm2-vllm-cpu.yaml"), "--set", f"kv_cache_memory={too_big}",
         "--results-dir", str(tmp_path), "-q"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, COLUMNS="80"),
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if "infeasible" in line)
    assert "does not fit in memory: needs" in line and " free" in line  # one line, even on a narrow terminal
    run = load_run(next(tmp_path.iterdir()))
    assert run.manifest["status"] == "infeasible" and not run.manifest["engine"]["memory_plan"]["fits"]
    assert not (run.directory / "engine.log").exists()  # the preflight stopped it before any engine started
