"""Calibrate on measured capacity searches and validate by leaving one configuration out: fit on the others'
steps, then predict the held-out configuration's per-probe TPOT (replaying its exact arrivals and token lengths)
and its capacity under the same SLO, and compare with what was measured."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infercost.capacity.result import CapacityOptions, CapacityResult, load_capacity
from infercost.errors import InputError
from infercost.projection.calibrate import Steps, fit, recover_steps
from infercost.projection.hardware import Hardware
from infercost.projection.project import Projector, measured_lengths
from infercost.projection.shape import ModelShape
from infercost.projection.steptime import Efficiency
from infercost.spec.workload import Workload
from infercost.store import load_run


@dataclass
class MeasuredConfig:
    """One measured capacity search: its configuration, its probes' runs and the steps recovered from them."""

    directory: Path
    deployment: dict[str, Any]
    engine: dict[str, Any]
    workload: Workload
    options: CapacityOptions
    result: CapacityResult
    runs: list[Any]
    steps: Steps
    machine: dict[str, Any]  # the machine description the search recorded (CPU model, cores, RAM, GPUs)
    host_probe: Hardware | None  # the host probe (bandwidth, FLOPs) recorded with it when it was calibrated

    @property
    def label(self) -> str:
        d = self.deployment
        return f"max_num_seqs={d.get('max_num_seqs')}"

    def lengths(self):
        pairs = []
        for run in self.runs:
            m = run.measured
            ok = m[m["error"].isna()]
            pairs += [(int(a), int(b)) for a, b in zip(ok["input_tokens"], ok["output_tokens"])]
        return measured_lengths(pairs, f"token lengths measured in {self.directory.name}")


def load_measured(directory: str | Path) -> MeasuredConfig:
    directory = Path(directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    result = load_capacity(directory)
    runs = [load_run(result.probe_dir(p)) for p in result.probes if p.run_dir]
    steps = Steps.concat([recover_steps(r.requests) for r in runs])
    probe = manifest.get("host_probe")
    return MeasuredConfig(directory, manifest["deployment"], manifest.get("engine", {}),
                          Workload.model_validate(manifest["workload"]), CapacityOptions(**manifest["options"]),
                          result, runs, steps, manifest.get("hardware", {}),
                          Hardware.model_validate(probe) if probe else None)


MACHINE_KEYS = ("cpu_model", "cpu_usable_cores", "ram_gib")  # what the host probe's cache is keyed on


def same_machine(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in MACHINE_KEYS) and [g.get("name") for g in a.get("gpus") or []] == [
        g.get("name") for g in b.get("gpus") or []]


def recorded_hardware(configs: list[MeasuredConfig]) -> Hardware | None:
    """The hardware the configurations were measured on, as recorded with them: projections of their runs must use
    it, not a probe of whatever machine reads them. None when a configuration records no host probe."""
    first = configs[0].machine
    for c in configs[1:]:
        if not same_machine(first, c.machine):
            raise InputError(f"the configurations were measured on different machines ({configs[0].directory.name}: "
                             f"{_describe(first)}; {c.directory.name}: {_describe(c.machine)}): calibrate each "
                             f"machine on its own runs")
    if any(c.host_probe is None for c in configs):
        return None
    return configs[0].host_probe


def _describe(machine: dict[str, Any]) -> str:
    return ", ".join(f"{k} {machine.get(k)}" for k in MACHINE_KEYS)


def projector_for(cfg: MeasuredConfig, shape: ModelShape, hardware: Hardware, eff: Efficiency) -> Projector:
    d, e = cfg.deployment, cfg.engine
    return Projector(shape, hardware, eff, dtype=e.get("dtype") or d.get("dtype") or "bfloat16",
                     quantization=d.get("quantization"), kv_cache_dtype=d.get("kv_cache_dtype", "auto"),
                     max_num_seqs=d["max_num_seqs"], max_num_batched_tokens=e.get("max_num_batched_tokens"),
                     enable_prefix_caching=d.get("enable_prefix_caching", True),
                     block_size=e.get("kv_block_size") or 16, max_model_len=e.get("max_model_len") or 2048,
                     kv_capacity_tokens=e.get("kv_cache_tokens"))


def _replay_tpot(projector: Projector, cfg: MeasuredConfig, run) -> tuple[float | None, float | None]:
    m = run.measured
    ok = m[m["error"].isna() & m["first_token_s"].notna()]
    if ok.empty:
        return None, None
    lengths = measured_lengths([(int(a), int(b)) for a, b in zip(ok["input_tokens"], ok["output_tokens"])], "replay")
    summary = projector.run(cfg.workload, lengths, arrivals=ok["sent_s"].to_numpy(dtype=float))
    measured = run.summary["latency"]["tpot_ms"]["stats"]["mean"] if run.summary else None
    return measured, summary.latency["tpot_ms"].stats["mean"]


def leave_one_out(configs: list[MeasuredConfig], shape: ModelShape, hardware: Hardware, dtype: str
                  ) -> list[dict[str, Any]]:
    rows = []
    for held in configs:
        others = [c for c in configs if c is not held]
        eff, _ = fit(Steps.concat([c.steps for c in others]), shape, hardware, dtype,
                     source=f"calibrated without {held.label}")
        projector = projector_for(held, shape, hardware, eff)
        for run in held.runs:
            measured, predicted = _replay_tpot(projector, held, run)
            if measured and predicted:
                rows.append({"held_out": held.label, "figure": "tpot_mean_ms",
                             "load": run.manifest["workload"]["traffic"].get("rate"), "measured": measured,
                             "projected": predicted, "abs_rel_error": abs(predicted - measured) / measured})
        if held.result.capacity_rps:
            projected = asyncio.run(projector.capacity(held.workload, held.lengths(), held.options))
            if projected.capacity_rps:
                m = held.result.capacity_rps
                rows.append({"held_out": held.label, "figure": "capacity_rps", "load": None, "measured": m,
                             "projected": projected.capacity_rps,
                             "abs_rel_error": abs(projected.capacity_rps - m) / m})
    return rows


def summarise_errors(rows: list[dict[str, Any]]) -> dict[str, float]:
    out = {}
    for figure in ("tpot_mean_ms", "capacity_rps"):
        errs = [r["abs_rel_error"] for r in rows if r["figure"] == figure]
        if errs:
            out[f"{figure}_mae"] = float(np.mean(errs))
            out[f"{figure}_max"] = float(np.max(errs))
            out[f"{figure}_n"] = len(errs)
    return out
