"""Peak memory while a run goes: resident memory of this process and every process it started (vLLM's engine core
and workers are children), and accelerator memory in use (nvidia-smi), sampled in the background."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import psutil


def tree_rss_bytes() -> int:
    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def gpu_used_bytes() -> int | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return sum(int(float(x)) for x in out.split()) * 2**20
    except (subprocess.SubprocessError, OSError, ValueError):
        return None


class MemorySampler:
    """`async with MemorySampler() as m:` … then m.peak_rss_bytes / m.peak_gpu_bytes."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.peak_rss_bytes = 0
        self.peak_gpu_bytes: int | None = None
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        self.peak_rss_bytes = max(self.peak_rss_bytes, tree_rss_bytes())
        gpu = gpu_used_bytes()
        if gpu is not None:
            self.peak_gpu_bytes = max(self.peak_gpu_bytes or 0, gpu)

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval_s)

    async def __aenter__(self) -> "MemorySampler":
        self.sample()
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self.sample()
