"""The words a spec may use, defined once: dtypes, quantisations, precisions a search may try, pricing models, SLO
metrics and latency statistics. Validation, search, projection, costing and reports all read them from here, so a
value accepted in one place is never unknown in another. Literal types serve pydantic; tuples are derived from them."""

from __future__ import annotations

import re
from typing import Literal, get_args

# Weight dtypes a deployment may name ("auto": the checkpoint's own, 16 bits on a GPU).
Dtype = Literal["auto", "bfloat16", "float16", "float32"]
DTYPES: tuple[str, ...] = get_args(Dtype)
# The dtypes that are a real number format (everything but "auto"), in the order engines probe them.
CONCRETE_DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")

# Weight quantisation in the transformers engine ("none": the dtype as is).
TransformersQuantization = Literal[
    "none", "bnb-int8", "bnb-nf4", "bnb-fp4", "torchao-int8", "torchao-int4", "quanto-int8"
]
TRANSFORMERS_QUANTIZATIONS: tuple[str, ...] = get_args(TransformersQuantization)

# vLLM quantisation methods a search may try (a deployment may name any method vLLM has).
VLLM_QUANTIZATIONS: tuple[str, ...] = ("fp8", "awq", "gptq")

# What a search varies per engine, default first: a dtype or a quantisation method.
ENGINE_PRECISIONS: dict[str, tuple[str, ...]] = {
    "vllm": ("bfloat16", "float32", "float16", *VLLM_QUANTIZATIONS),
    "transformers": TRANSFORMERS_QUANTIZATIONS,
}

PricingModel = Literal["on_demand", "spot", "reserved_1y", "reserved_3y"]
PRICING_MODELS: tuple[str, ...] = get_args(PricingModel)

# The latency metrics an SLO may bound, and which of them a single request can be judged on for goodput.
SloMetric = Literal["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"]
SLO_METRICS: tuple[str, ...] = get_args(SloMetric)
PER_REQUEST_SLO_METRICS: tuple[str, ...] = ("ttft_ms", "tpot_ms", "e2e_ms")

# Latency statistics: every summary reports these; an SLO may bound these or any other percentile (p99.9) or max.
STANDARD_STATS: tuple[str, ...] = ("mean", "p50", "p90", "p95", "p99")
_STAT = re.compile(r"^(p(\d{1,2}(\.\d+)?)|mean|max)$")


def is_stat(name: str) -> bool:
    """Whether `name` is a latency statistic: pN (N below 100, decimals allowed: p99.9), mean or max."""
    return bool(_STAT.match(name))


def percentile(name: str) -> float | None:
    """The percentile a statistic stands for: p95 -> 95.0, p99.9 -> 99.9, max -> 100.0; mean is none (None)."""
    if not is_stat(name):
        raise ValueError(f"unknown statistic '{name}': use p50, p90, p95, p99, mean or max")
    if name == "mean":
        return None
    return 100.0 if name == "max" else float(name[1:])


def stat_order(name: str) -> tuple[bool, bool, float]:
    """Sort key for statistics as tables show them: percentiles ascending, then mean, then max."""
    return name == "max", name == "mean", float(name[1:]) if name.startswith("p") else 0.0
