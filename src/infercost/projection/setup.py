"""A Projector for a deployment on some hardware: one rule for `infercost project`, a study's trials and its
report. A calibration carries the hardware probe its efficiencies are shares of, so it applies to the hardware it
was made on and nowhere else; everywhere else the documented defaults (and their wider error) apply."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from infercost.capacity.result import CapacityOptions
from infercost.metrics.intervals import Confidence
from infercost.projection.calibrate import load_calibration
from infercost.projection.hardware import HOST, Hardware, get_hardware
from infercost.projection.project import Lengths, Projector
from infercost.projection.shape import ModelShape, load_shape
from infercost.projection.steptime import DEFAULT_CPU, DEFAULT_GPU, Efficiency
from infercost.spec.deployment import Deployment
from infercost.spec.workload import Workload

Calibration = tuple[Efficiency, dict]
HERE = ("here", HOST)
DEFAULT_MEMORY_SHARE = 0.9  # vLLM's default gpu_memory_utilization


def calibration_from(path: str | Path) -> Calibration:
    """A calibration file, its efficiencies naming the file they came from."""
    eff, data = load_calibration(path)
    return eff.model_copy(update={"source": f"{eff.source} ({path})"}), data


def hardware_for(name: str, calibration: Calibration | None = None) -> Hardware:
    """This machine is the probe recorded with the calibration (efficiencies are relative to it), else probed."""
    if name in HERE:
        return Hardware.model_validate(calibration[1]["hardware"]) if calibration else get_hardware(HOST)
    return get_hardware(name)


def efficiency_for(hardware: Hardware, calibration: Calibration | None = None) -> Efficiency:
    if calibration is not None and calibration[1].get("hardware", {}).get("name") == hardware.name:
        return calibration[0]
    return DEFAULT_CPU if hardware.name == HOST else DEFAULT_GPU


def projector_for(deployment: Deployment, hardware: str, *, calibration: Calibration | None = None,
                  shape: ModelShape | None = None, devices: int | None = None, dtype: str | None = None,
                  memory_share_applies: bool = True) -> Projector:
    """`memory_share_applies`: whether the deployment's gpu_memory_utilization was written for `hardware` (a
    study's fixed fields are for this machine, so its projected GPUs keep vLLM's default)."""
    hw = hardware_for(hardware, calibration)
    get = lambda k, default=None: getattr(deployment, k, default)  # noqa: E731  engines differ in their fields
    chosen_dtype = dtype or (get("dtype") if get("dtype") not in (None, "auto") else None) or "bfloat16"
    share = (get("gpu_memory_utilization") if memory_share_applies else None) or DEFAULT_MEMORY_SHARE
    return Projector(shape or load_shape(deployment.model), hw, efficiency_for(hw, calibration), dtype=chosen_dtype,
                     quantization=get("quantization") if get("quantization") not in (None, "none") else None,
                     kv_cache_dtype=get("kv_cache_dtype", "auto") or "auto",
                     devices=devices or get("tensor_parallel_size", 1) or 1, max_num_seqs=get("max_num_seqs", 256),
                     max_num_batched_tokens=get("max_num_batched_tokens"),
                     enable_prefix_caching=get("enable_prefix_caching", True),
                     memory_utilization=share, max_model_len=get("max_model_len") or 4096)


def token_counter(model: str) -> Callable[[str], int] | None:
    """The bundled model's tokenizer, so prompt files are counted in real tokens; None elsewhere (the caller then
    estimates, and says so)."""
    try:
        from infercost.models.bundled import BUNDLED

        if model not in BUNDLED:
            return None
        from transformers import AutoTokenizer

        from infercost.models import resolve_model

        tok = AutoTokenizer.from_pretrained(str(resolve_model(model)))
        return lambda text: len(tok(text)["input_ids"])
    except Exception:
        return None


def is_calibrated(efficiency: Efficiency) -> bool:
    """Whether the efficiencies were fitted and validated on measured runs, or are the documented defaults."""
    return efficiency.source not in (DEFAULT_CPU.source, DEFAULT_GPU.source)


def confidence_of(projector: Projector) -> Confidence:
    eff = projector.efficiency
    return Confidence.projected(eff.expected_error, is_calibrated(eff), eff.source)


BAND_GROWTH = 1.25


async def capacity_band(projector: Projector, workload: Workload, lengths: Lengths,
                        options: CapacityOptions, central_rps: float | None = None) -> tuple[float | None, float | None]:
    """Projected capacity at the error band's slow and fast ends, each searched like the central figure. Given the
    central capacity, each end's search starts near where it must lie (a slower step cannot serve more), so its
    bracket takes a few probes."""
    slow, fast = projector.band_ends()
    if options.start is not None or not central_rps:
        low = await slow.capacity(workload, lengths, options)
        high = await fast.capacity(workload, lengths, options)
        return low.capacity_rps, high.capacity_rps
    # every step time longer (shorter) by the error share: about that share less (more) capacity; searched from
    # there in steps of a quarter, so the bracket is found in two or three probes
    e = projector.efficiency.expected_error
    low = await slow.capacity(workload, lengths, options.model_copy(update={"start": central_rps / (1 + e)}),
                              growth=BAND_GROWTH)
    high = await fast.capacity(workload, lengths, options.model_copy(update={"start": central_rps * (1 + e)}),
                               growth=BAND_GROWTH)
    return low.capacity_rps, high.capacity_rps
