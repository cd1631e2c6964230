"""What memory the machine has free for an engine, read the way the engine itself will judge it, so a preflight that
passes here is not contradicted a minute later by the engine.

- CPU: vLLM's CPU backend checks its KV cache against the *NUMA node* it runs on (free + file cache + reclaimable
  slab of that node, clamped by the cgroup limit), not against the whole host. A host with 24 GiB can have a node
  with 7 GiB available, so the node is what counts.
- GPU: the device's free memory as the driver reports it (nvidia-smi), read without creating a CUDA context in
  this process (a context would itself hold memory and force vLLM's workers to spawn)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psutil
from pydantic import BaseModel

NODE_ROOT = Path("/sys/devices/system/node")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class FreeMemory(BaseModel):
    """Memory an engine can claim on one device, with where each figure came from."""

    device: str  # "cpu" | "cuda"
    where: str  # "NUMA node 0", "host", "GPU 0 (NVIDIA H100 80GB HBM3)"
    total_bytes: int
    available_bytes: int
    source: str


def parse_node_meminfo(text: str) -> dict[str, int]:
    """`Node 0 MemTotal:  97421888 kB` lines → bytes by key."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "Node":
            out[parts[2].rstrip(":")] = int(parts[3]) * 1024
    return out


def node_available(meminfo: dict[str, int]) -> int:
    """vLLM's own formula (vllm.utils.cpu_resource_utils.get_memory_node_info): free + file cache + reclaimable."""
    return sum(meminfo.get(k, 0) for k in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable"))


def cgroup_limit(root: Path = CGROUP_ROOT) -> tuple[int, int] | None:
    """(limit, usage) of this process's memory cgroup (v2, else v1); None where there is no limit."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            raw = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if raw == "max" or not raw.isdigit() or int(raw) >= 2**60:
            return None
        return int(raw), usage
    return None


def numa_node_of_cpu(cpu: int, root: Path = Path("/sys/devices/system/cpu")) -> int | None:
    try:
        nodes = [p.name for p in (root / f"cpu{cpu}").iterdir() if p.name.startswith("node") and p.name[4:].isdigit()]
    except OSError:
        return None
    return int(nodes[0][4:]) if nodes else None


def clamp(free: FreeMemory, cgroup: tuple[int, int] | None, host_available: int) -> FreeMemory:
    """Never more than the cgroup leaves, nor more than the whole host has available."""
    available, source, total = free.available_bytes, free.source, free.total_bytes
    if cgroup is not None:
        limit, usage = cgroup
        if limit - usage < available:
            available, source = max(0, limit - usage), f"{source}, clamped by the cgroup limit ({limit} bytes)"
        total = min(total, limit)
    if host_available < available:
        available, source = host_available, f"{source}, clamped by the host's available memory"
    return free.model_copy(update={"available_bytes": available, "total_bytes": total, "source": source})


def host_memory() -> FreeMemory:
    """Free memory where a CPU engine's memory goes: the NUMA node of the first CPU this process may run on (the
    node vLLM binds), else the whole host."""
    vm = psutil.virtual_memory()
    try:
        first_cpu = min(os.sched_getaffinity(0))
    except (AttributeError, ValueError):
        first_cpu = 0
    node = numa_node_of_cpu(first_cpu)
    meminfo_path = NODE_ROOT / f"node{node}" / "meminfo"
    if node is not None and meminfo_path.is_file():
        info = parse_node_meminfo(meminfo_path.read_text())
        free = FreeMemory(device="cpu", where=f"NUMA node {node}", total_bytes=info.get("MemTotal", vm.total),
                          available_bytes=node_available(info),
                          source=f"{meminfo_path}: MemFree + Active(file) + Inactive(file) + SReclaimable")
    else:
        free = FreeMemory(device="cpu", where="host", total_bytes=vm.total, available_bytes=vm.available,
                          source="/proc/meminfo MemAvailable (no NUMA node information)")
    return clamp(free, cgroup_limit(), vm.available)


def gpu_memory(index: int = 0) -> FreeMemory | None:
    """Free memory of GPU `index` from nvidia-smi (what other processes hold is already taken off); None without
    an NVIDIA driver."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=name,memory.total,memory.free",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10,
                             check=True).stdout.strip()
        name, total, free = (x.strip() for x in out.splitlines()[0].rsplit(",", 2))
        return FreeMemory(device="cuda", where=f"GPU {index} ({name})", total_bytes=int(float(total)) * 2**20,
                          available_bytes=int(float(free)) * 2**20, source="nvidia-smi memory.free")
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None
