"""The hardware table: accelerators from their datasheets (`data/accelerators.csv`, dense figures, sourced), and the
host CPU measured on the spot by a short memory-bandwidth and matmul probe (cached per CPU model and core count)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from infercost.errors import InputError

HOST = "host-cpu"


class Hardware(BaseModel):
    name: str
    memory_gb: float
    bandwidth_gbps: float  # peak memory bandwidth, GB/s
    tflops: dict[str, float]  # dense peak by compute type: bf16, fp16, fp8, int8, fp32
    interconnect_gbps: float | None = None
    source: str
    as_of: str | None = None
    measured: bool = False  # True for the host probe

    def peak_tflops(self, dtype: str, quantization: str | None = None) -> float:
        """The compute a configuration runs at: fp8 checkpoints use fp8 units where there are any; weight-only
        quantisation (int4/int8 weights) dequantises and computes in 16 bits."""
        if quantization == "fp8" and "fp8" in self.tflops:
            return self.tflops["fp8"]
        key = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "auto": "bf16"}.get(dtype, "bf16")
        if key in self.tflops:
            return self.tflops[key]
        if key == "fp32" and "bf16" in self.tflops:
            return self.tflops["bf16"] / 2  # TF32 tensor cores: half the 16-bit rate on NVIDIA datacentre GPUs
        if key == "bf16" and "fp16" in self.tflops:
            return self.tflops["fp16"]
        raise InputError(f"no {key} compute figure for {self.name}", field="hardware")


def _float(v: str) -> float | None:
    return float(v) if v and v.strip() else None


def accelerators() -> dict[str, Hardware]:
    text = (resources.files("infercost.projection") / "data" / "accelerators.csv").read_text(encoding="utf-8")
    out = {}
    for row in csv.DictReader(text.splitlines()):
        tflops = {k: _float(row[c]) for k, c in (("bf16", "bf16_tflops"), ("fp16", "fp16_tflops"),
                                                  ("fp8", "fp8_tflops"), ("int8", "int8_tops"))}
        out[row["name"]] = Hardware(
            name=row["name"], memory_gb=float(row["memory_gb"]), bandwidth_gbps=float(row["memory_bandwidth_gbps"]),
            tflops={k: v for k, v in tflops.items() if v}, interconnect_gbps=_float(row["interconnect_gbps"]),
            source=row["source"], as_of=row["as_of"],
        )
    a10g, a10 = out.get("A10G"), out.get("A10")
    if a10g is not None and not a10g.tflops and a10 is not None:
        # NVIDIA publishes no A10G datasheet; its compute is taken from the A10 (same GA102 chip), which may
        # overstate it. Decode is bandwidth-bound, so this mostly affects prefill (TTFT).
        out["A10G"] = a10g.model_copy(update={"tflops": dict(a10.tflops),
                                              "source": f"{a10g.source}; compute from the A10 datasheet "
                                                        f"({a10.source}), may overstate"})
    return out


def _cache_dir() -> Path:
    return Path(os.environ.get("INFERCOST_CACHE", Path.home() / ".cache" / "infercost"))


def host_cpu(refresh: bool = False) -> Hardware:
    """This machine's CPU, measured: STREAM-like copy bandwidth (numpy, 256 MiB arrays) and fp32/bf16 matmul rate
    (torch, all usable cores), best of several repeats. Cached per CPU model and core count."""
    from infercost.provenance import hardware

    hw = hardware()
    key = hashlib.sha256(f"{hw['cpu_model']}|{hw['cpu_usable_cores']}|{hw['ram_gib']}".encode()).hexdigest()[:12]
    path = _cache_dir() / f"host-cpu-{key}.json"
    if path.is_file() and not refresh:
        return _bf16_at_least_fp32(Hardware.model_validate_json(path.read_text()))
    import numpy as np
    import torch

    src = np.ones(32 * 2**20, dtype=np.float64)  # 256 MiB
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    bandwidth = 2 * src.nbytes / best / 1e9  # read + write
    tflops = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(1024, 1024, dtype=dtype)
        b = torch.randn(1024, 1024, dtype=dtype)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t)
        tflops[name] = 2 * 1024**3 / best / 1e12
    result = Hardware(
        name=HOST, memory_gb=hw["ram_gib"] * 2**30 / 1e9, bandwidth_gbps=bandwidth, tflops=tflops,
        source=f"measured here: {hw['cpu_model']}, {hw['cpu_usable_cores']} cores (numpy copy, torch.mm 1024^3)",
        as_of=datetime.now(timezone.utc).date().isoformat(), measured=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=2))
    return _bf16_at_least_fp32(result)


def _bf16_at_least_fp32(hw: Hardware) -> Hardware:
    """On a CPU without native bf16 (no AVX-512 BF16 or AMX) torch.mm's bf16 path is a reference loop, measured 150
    times slower than fp32 on a 2-core AMD EPYC, while a serving engine converts bf16 to fp32 and computes there: vLLM's
    CPU engine decoded SmolLM2 in bf16 at 68 ms per token (median) on that machine, where the torch.mm rate implied a
    595 ms floor and the screen rejected a configuration that meets a 250 ms SLO. bf16 is credited with at least the
    fp32 rate; the measured figures stay in the cached file."""
    fp32, bf16 = hw.tflops.get("fp32"), hw.tflops.get("bf16")
    if fp32 is None or bf16 is None or bf16 >= fp32:
        return hw
    return hw.model_copy(update={"tflops": {**hw.tflops, "bf16": fp32},
                                 "source": hw.source + f"; bf16 at the fp32 rate (torch.mm bf16 measured "
                                                       f"{bf16 * 1e3:.3g} GFLOP/s)"})


def get_hardware(name: str) -> Hardware:
    if name in (HOST, "cpu", "host"):
        return host_cpu()
    table = accelerators()
    if name not in table:
        raise InputError(f"unknown hardware {name!r}: expected {HOST} or one of {', '.join(table)}",
                         field="hardware")
    return table[name]
