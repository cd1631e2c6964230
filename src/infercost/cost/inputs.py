"""What the cost command prices: a capacity result (the figure cost should come from) or a single run (its
throughput, labelled as not a capacity), with the workload it was measured on for demand, budget and value."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from infercost.capacity.result import load_capacity
from infercost.cost.pricing import Throughput, throughput_from_capacity, throughput_from_run
from infercost.errors import InputError
from infercost.spec.workload import Workload


@dataclass
class PricedInput:
    throughput: Throughput
    workload: Workload
    peak_rss_bytes: int | None
    gpus_used: int


def load_priced_input(path: str | Path) -> PricedInput:
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    manifest_file = directory / "manifest.json"
    if not manifest_file.is_file():
        raise InputError("expected a capacity result or run directory (no manifest.json)", source=str(path))
    manifest = json.loads(manifest_file.read_text())
    try:
        workload = Workload.model_validate(manifest["workload"])
    except Exception as exc:
        raise InputError(f"the stored workload does not validate: {str(exc).splitlines()[0]}",
                         source=str(manifest_file)) from None
    deployment = manifest.get("deployment", {})
    gpus_used = int(deployment.get("tensor_parallel_size") or 1)
    if (directory / "capacity.json").is_file():
        result = load_capacity(directory)
        best = result.best_probe()
        probe_dir = result.probe_dir(best) if best is not None else None
        peak = None
        if probe_dir is not None and (probe_dir / "summary.json").is_file():
            peak = (json.loads((probe_dir / "summary.json").read_text()).get("memory") or {}).get("peak_rss_bytes")
        return PricedInput(throughput_from_capacity(result, directory), workload, peak, gpus_used)
    summary_file = directory / "summary.json"
    if not summary_file.is_file():
        raise InputError(f"the run has no summary (status {manifest.get('status')})", source=str(directory))
    summary = json.loads(summary_file.read_text())
    peak = (summary.get("memory") or {}).get("peak_rss_bytes")
    return PricedInput(throughput_from_run(manifest, summary, directory), workload, peak, gpus_used)
