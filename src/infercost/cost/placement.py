"""Which catalog offers a measured capacity can be priced on: the hardware it was measured on. A GPU run is priced
on offers with that accelerator and count; a CPU run on CPU instances with at least as many vCPUs and enough RAM
for what the run used. Pricing a CPU run on another instance assumes the same speed per vCPU, which the result
says beside the figure."""

from __future__ import annotations

import re
from typing import Any

from infercost.cost.catalog import Catalog, Offer

_GPU_NAMES = [  # nvidia-smi / torch device names -> catalog accelerator
    (r"H200", "H200"), (r"B200", "B200"), (r"H100.*(PCIe|NVL)", "H100-PCIe"), (r"H100", "H100-SXM"),
    (r"A100.*80", "A100-80GB"), (r"A100", "A100-40GB"), (r"L40S", "L40S"), (r"\bL4\b", "L4"), (r"A10G", "A10G"),
    (r"\bA10\b", "A10"), (r"\bT4\b", "T4"), (r"MI300X", "MI300X"),
]


def accelerator_of(gpu_name: str) -> str | None:
    for pattern, name in _GPU_NAMES:
        if re.search(pattern, gpu_name, re.IGNORECASE):
            return name
    return None


def matching_offers(catalog: Catalog, hardware: dict[str, Any], engine: dict[str, Any] | None = None,
                    peak_rss_bytes: int | None = None, gpus_used: int = 1) -> tuple[list[Offer], str]:
    """Offers for the hardware a result was measured on, and a sentence saying how they were chosen."""
    gpus = hardware.get("gpus") or []
    on_gpu = gpus and str((engine or {}).get("device", "cuda")).startswith("cuda")
    if on_gpu:
        acc = accelerator_of(gpus[0].get("name", ""))
        if acc is None:
            return [], f"GPU '{gpus[0].get('name')}' is not in the catalog's accelerator list"
        return (catalog.find(accelerator=acc, accelerator_count=gpus_used),
                f"measured on {gpus_used}x {acc}: priced on offers with {gpus_used}x {acc}")
    cores = hardware.get("cpu_usable_cores") or 1
    ram_gb = (peak_rss_bytes or 0) / 2**30 * 1.25  # process peak plus a quarter for the OS and page cache
    offers = catalog.find(accelerator="none", min_vcpus=cores, min_ram_gb=ram_gb)
    return offers, (f"measured on {cores} CPU cores ({hardware.get('cpu_model')}): priced on CPU instances with "
                    f">= {cores} vCPUs and >= {ram_gb:.1f} GB RAM (peak RSS + 25%), assuming the same speed per vCPU")


def accelerator_offers(catalog: Catalog, accelerator: str, devices: int = 1) -> list[Offer]:
    """Offers that can host a replica of `devices` accelerators. An instance with a multiple of that many (an 8-GPU
    node for 1, 2 or 4-GPU replicas) hosts several replicas; each is priced at its share of the instance."""
    out = []
    for o in catalog.find(accelerator=accelerator):
        if o.accelerator_count < devices or o.accelerator_count % devices:
            continue
        if o.accelerator_count == devices:
            out.append(o)
            continue
        share = devices / o.accelerator_count
        scale = lambda v: None if v is None else v * share  # noqa: E731
        out.append(o.model_copy(update={
            "sku": f"{o.sku} ({devices} of {o.accelerator_count} GPUs)", "accelerator_count": devices,
            "on_demand_hourly": o.on_demand_hourly * share, "spot_hourly": scale(o.spot_hourly),
            "reserved_1y_hourly": scale(o.reserved_1y_hourly), "reserved_3y_hourly": scale(o.reserved_3y_hourly),
            "notes": f"{o.accelerator_count // devices} replicas per instance, each priced at {share:.3g} of it; "
                     + (o.notes or ""),
        }))
    return out
