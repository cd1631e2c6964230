"""Calibrating the step-time model on measured capacity searches: fit the efficiencies on all of them, check each
configuration by leaving it out and predicting it from the others, and save the file projections read."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel

from infercost.errors import InputError
from infercost.projection.calibrate import Steps, fit, save_calibration
from infercost.projection import hardware as hardware_table
from infercost.projection.shape import load_shape
from infercost.projection.steptime import Efficiency
from infercost.projection.validate import leave_one_out, load_measured, recorded_hardware, same_machine, \
    summarise_errors
from infercost import provenance
from infercost.redact import redacted_command
from infercost.store.runs import stored_path, update_manifest

CALIBRATION_DIR = "calibration"


class Calibration(BaseModel):
    path: Path
    efficiency: Efficiency
    fit: dict[str, Any]
    validation: dict[str, Any]  # mean absolute errors of the leave-one-out predictions
    rows: list[dict[str, Any]]  # each held-out prediction against its measurement


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def calibration_path(results_dir: str | Path, engine: str, hardware: dict, model: str) -> Path:
    where = f"{hardware.get('cpu_model')}-{hardware.get('cpu_usable_cores')}c"
    if hardware.get("gpus"):
        where = f"{hardware['gpus'][0].get('name')}"
    return Path(results_dir) / CALIBRATION_DIR / f"{engine}-{_slug(where)}-{_slug(model)}.json"


def calibrate(dirs: Sequence[str | Path], *, output: str | Path | None = None, results_dir: str | Path = "results",
              refresh_probe: bool = False) -> Calibration:
    """`dirs`: two or more capacity directories of one model measured with different settings (max_num_seqs)."""
    dirs = [Path(d) for d in dirs]
    if len(dirs) < 2:
        raise InputError("calibration needs at least two measured configurations (--max-num-seqs a,b or --from)")
    configs = [load_measured(d) for d in dirs]
    first = configs[0]
    hw = recorded_hardware(configs)  # the machine the runs were measured on, not necessarily this one
    if hw is None or refresh_probe:
        here = provenance.hardware()  # read at call time: tests stand in another machine here
        elsewhere = [c for c in configs if not same_machine(c.machine, here)]
        if elsewhere:
            m = elsewhere[0].machine
            raise InputError(f"{elsewhere[0].directory} was measured on another machine ({m.get('cpu_model')}, "
                             f"{m.get('cpu_usable_cores')} cores): its host probe (bandwidth, FLOPs) is not recorded "
                             f"with it and can only be measured there", field="--from")
        hw = hardware_table.host_cpu(refresh=refresh_probe)
        for c in configs:  # recorded with the runs, so a later calibration or test uses these figures anywhere
            update_manifest(c.directory, host_probe=hw.model_dump())
    model, dtype = first.deployment["model"], first.engine.get("dtype") or first.deployment.get("dtype")
    model_dir = first.engine.get("model_dir")  # a path on the machine that measured: this one may not have it
    shape = load_shape(model_dir if model_dir and Path(model_dir).is_dir() else model)
    shape = shape.model_copy(update={"name": model})
    eff, stats = fit(Steps.concat([c.steps for c in configs]), shape, hw, dtype,
                     source=f"calibrated on {len(configs)} measured configurations ({', '.join(c.label for c in configs)})")
    rows = leave_one_out(configs, shape, hw, dtype)
    errors = summarise_errors(rows)
    if errors.get("capacity_rps_mae") is not None:
        eff = eff.model_copy(update={"expected_error": max(errors.get("capacity_rps_mae", 0),
                                                           errors.get("tpot_mean_ms_mae", 0), 0.05)})
    machine = first.machine
    out = Path(output) if output else calibration_path(results_dir, first.engine.get("engine", "vllm"), machine, model)
    save_calibration(out, {
        "engine": first.engine.get("engine"), "engine_version": first.engine.get("vllm_version"), "model": model,
        "dtype": dtype, "hardware": hw.model_dump(), "machine": machine, "efficiency": eff.model_dump(),
        "fit": stats, "validation": {"method": "leave one configuration out", "errors": errors, "rows": rows},
        "runs": [stored_path(d, out.parent) for d in dirs], "command": redacted_command(sys.argv),
    })
    return Calibration(path=out, efficiency=eff, fit=stats, validation=errors, rows=rows)
