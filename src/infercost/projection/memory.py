"""Whether a model fits, and how many sequences its KV cache holds: memory x utilisation, less the weights and an
activation reserve, divided by KV bytes per token."""

from __future__ import annotations

from pydantic import BaseModel

from infercost.projection.hardware import Hardware
from infercost.projection.steptime import StepModel

ACTIVATION_RESERVE_GB = 1.0  # per device: activations, CUDA graphs, allocator slack (vLLM profiles this at start)


class MemoryPlan(BaseModel):
    fits: bool
    weights_gb: float
    usable_gb: float
    kv_cache_gb: float
    kv_capacity_tokens: int
    max_concurrent_sequences: int  # at the context length given
    reason: str | None = None


def memory_plan(step: StepModel, hardware: Hardware, devices: int = 1, memory_utilization: float = 0.9,
                context_tokens: int = 2048) -> MemoryPlan:
    usable = hardware.memory_gb * 1e9 * memory_utilization * devices
    weights = step.weight_bytes
    kv_bytes = usable - weights - ACTIVATION_RESERVE_GB * 1e9 * devices
    tokens = int(kv_bytes // step.kv_per_token) if kv_bytes > 0 else 0
    fits = tokens >= context_tokens
    reason = None
    if kv_bytes <= 0:
        reason = (f"weights {weights / 1e9:.1f} GB + {ACTIVATION_RESERVE_GB * devices:g} GB reserve exceed "
                  f"{usable / 1e9:.1f} GB usable ({devices}x {hardware.name} at {memory_utilization:.0%})")
    elif not fits:
        reason = f"KV cache holds {tokens} tokens, less than one {context_tokens}-token sequence"
    return MemoryPlan(fits=fits, weights_gb=weights / 1e9, usable_gb=usable / 1e9, kv_cache_gb=max(kv_bytes, 0) / 1e9,
                      kv_capacity_tokens=max(tokens, 0), max_concurrent_sequences=max(tokens, 0) // context_tokens,
                      reason=reason)
