"""Plain Hugging Face transformers in-process, with optional weight quantisation (bitsandbytes, torchao, quanto).

Batching is STATIC, not continuous: a background task takes the requests that are waiting when it is free (up to
`max_num_seqs`, waiting at most ~5 ms for more to arrive), left-pads them into one batch and decodes that batch step by
step until every row in it has finished. Requests that arrive meanwhile wait for the whole batch to finish; rows that
finish early keep being computed (their output is discarded) until the longest row is done. This is what a naive
transformers server does, so its throughput and latencies are a baseline, not what vLLM-style engines reach.

Each step runs the model forward in a worker thread (`asyncio.to_thread`), so the event loop keeps timestamping
tokens: every request gets one `Chunk(text_delta, 1)` per generated token as soon as the step that made it ends.
The text delta is the new suffix of the decoded text of all the request's generated ids (so multi-byte characters
split over tokens come out whole). Decoding is greedy at temperature 0, else sampled with temperature and top_p.

`enable_prefix_caching` keeps the KV of prompts' full 16-token blocks (see `prefix_cache`) and prefills only what a
new prompt does not share with an earlier one, as vLLM's automatic prefix caching does; its hit rate is reported.

Before loading, a memory plan (weights + a full batch's KV cache + the prefix cache budget) is checked against free
memory, so a model that cannot fit is reported in one line rather than swapping or being killed. Once loaded,
memory is measured, not estimated: `weights_bytes` is the bytes the parameters and buffers hold after quantisation
(for torchao's tensor subclasses, their inner tensors: `get_memory_footprint()` reports their nominal size), the process
RSS is read before and after loading and sampled at every decode step (peak kept), and on CUDA
`torch.cuda.max_memory_allocated()` is reported."""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Sequence

from infercost.engines.base import Chunk, Engine, RequestFailed, Usage
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
from infercost.engines.prefix_cache import BLOCK, PrefixKVCache
from infercost.errors import EngineUnavailable
from infercost.models import resolve_model
from infercost.spec.deployment import TransformersDeployment
from infercost.workload.requests import Request
from infercost.spec.vocabulary import CONCRETE_DTYPES

def tensor_bytes(t: Any) -> int:
    """Bytes a tensor really holds. Quantised tensor subclasses (torchao) report their nominal dtype; their storage is
    the inner tensors they flatten to."""
    if hasattr(t, "__tensor_flatten__") and type(t).__name__ not in ("Parameter", "Tensor"):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def weights_bytes(model: Any) -> int:
    """Parameters and buffers as stored after quantisation (tied weights counted once)."""
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:  # persistent objects: their ids are stable
        data = t.data
        key = ("sub", id(t)) if hasattr(data, "__tensor_flatten__") else ("ptr", data.data_ptr())
        if key in seen:
            continue
        seen.add(key)
        total += tensor_bytes(data)
    return total


BATCH_WAIT_S = 0.005  # how long the batcher waits for more requests to join a batch

_DTYPES = set(CONCRETE_DTYPES)
_END = object()  # end-of-stream marker on a request's event queue


@dataclass(eq=False)
class _Pending:
    """One request waiting for or inside a batch, and the queue its generate() reads events from."""

    request: Request
    prompt_ids: list[int]
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    generated: list[int] = field(default_factory=list)
    text: str = ""
    finished: bool = False
    cancelled: bool = False
    finish_reason: str | None = None
    generator: Any = None  # torch.Generator where the request has a seed


def _module_version(name: str) -> str | None:
    try:
        return getattr(importlib.import_module(name), "__version__", "unknown")
    except Exception:  # not installed, or fails to import (e.g. no compatible native library)
        return None


class TransformersEngine(Engine[TransformersDeployment]):
    name = "transformers"

    def __init__(self, deployment: TransformersDeployment):
        super().__init__(deployment)
        self._model = None
        self._tokenizer = None
        self._model_dir: str | None = None
        self._device: str | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._eos_ids: set[int] = set()
        self._proc = None
        self.weights_bytes: int | None = None
        self.rss_before_load_bytes: int | None = None
        self.rss_after_load_bytes: int | None = None
        self.peak_rss_bytes: int | None = None
        self.cuda_max_allocated_bytes: int | None = None
        self.batches_run = 0
        self.max_batch_seen = 0
        self._prefix_cache: PrefixKVCache | None = None
        self.prefix_caching_status = "off"

    # ---------------------------------------------------------------- loading

    def _resolve_device(self) -> str:
        import torch

        device = self.deployment.device or "auto"
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    def _torch_dtype(self):
        import torch

        dtype = self.deployment.dtype
        return getattr(torch, dtype) if dtype in _DTYPES else "auto"

    def _quantization_config(self, device: str):
        """The transformers quantization config for the deployment's `quantization` (None for "none")."""
        import torch

        q = self.deployment.quantization or "none"
        if q == "none":
            return None
        if q.startswith("bnb-"):
            if _module_version("bitsandbytes") is None:
                raise EngineUnavailable(f"quantization '{q}' needs the PyPI package 'bitsandbytes'")
            from transformers import BitsAndBytesConfig

            if q == "bnb-int8":
                return BitsAndBytesConfig(load_in_8bit=True)
            if q in ("bnb-nf4", "bnb-fp4"):
                compute = self._torch_dtype()
                if compute == "auto":
                    compute = torch.bfloat16
                return BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type=q.removeprefix("bnb-"), bnb_4bit_compute_dtype=compute
                )
        if q.startswith("torchao-"):
            if _module_version("torchao") is None:
                raise EngineUnavailable(f"quantization '{q}' needs the PyPI package 'torchao'")
            from transformers import TorchAoConfig

            try:  # newer torchao/transformers: config objects
                from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig

                quant_type = Int8WeightOnlyConfig() if q == "torchao-int8" else Int4WeightOnlyConfig()
            except ImportError:  # older: names
                quant_type = "int8_weight_only" if q == "torchao-int8" else "int4_weight_only"
            if q not in ("torchao-int8", "torchao-int4"):
                raise EngineUnavailable(f"unknown quantization '{q}' for engine 'transformers'")
            return TorchAoConfig(quant_type=quant_type)
        if q == "quanto-int8":
            if _module_version("optimum.quanto") is None:
                raise EngineUnavailable(f"quantization '{q}' needs the PyPI package 'optimum-quanto'")
            from transformers import QuantoConfig

            return QuantoConfig(weights="int8")
        raise EngineUnavailable(f"unknown quantization '{q}' for engine 'transformers'")

    def _rss(self) -> int | None:
        if self._proc is None:
            return None
        try:
            rss = self._proc.memory_info().rss
        except Exception:
            return None
        if self.peak_rss_bytes is None or rss > self.peak_rss_bytes:
            self.peak_rss_bytes = rss
        return rss

    def _load(self, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except Exception:
            pass
        quant = self._quantization_config(device)  # raises EngineUnavailable before any loading
        self._model_dir = str(resolve_model(self.deployment.model))
        tok = self._tokenizer or AutoTokenizer.from_pretrained(self._model_dir)
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        kwargs: dict[str, Any] = {"dtype": self._torch_dtype(), "device_map": device}
        if quant is not None:
            kwargs["quantization_config"] = quant
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        model = AutoModelForCausalLM.from_pretrained(self._model_dir, **kwargs)
        model.eval()
        self._tokenizer = tok
        self._model = model
        eos: set[int] = set()
        for source in (getattr(model, "generation_config", None), model.config, tok):
            value = getattr(source, "eos_token_id", None) if source is not None else None
            if isinstance(value, int):
                eos.add(value)
            elif isinstance(value, (list, tuple)):
                eos.update(int(v) for v in value)
        self._eos_ids = eos
        self.weights_bytes = weights_bytes(model)
        if self.deployment.enable_prefix_caching:
            self._setup_prefix_cache(model)

    def _setup_prefix_cache(self, model: Any) -> None:
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        layer_types = set(getattr(config, "layer_types", None) or [])
        if getattr(config, "sliding_window", None) and (not layer_types or layer_types - {"full_attention"}):
            self.prefix_caching_status = "unavailable: the model has sliding-window attention layers"
            return
        budget_mb = self.deployment.prefix_cache_mb
        self._prefix_cache = PrefixKVCache(int(budget_mb * 2**20))
        self.prefix_caching_status = f"on ({budget_mb} MiB LRU, {BLOCK}-token blocks)"

    def plan_memory(self, requests: Sequence[Request] = ()) -> MemoryPlan | None:
        """Weights + the KV cache of a full batch of the workload's longest sequence + the prefix cache's budget
        must fit where the model will run; raises InsufficientMemory before anything is loaded when they cannot."""
        from transformers import AutoTokenizer

        d = self.deployment
        device = self._resolve_device()
        self._model_dir = str(resolve_model(d.model))
        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(self._model_dir)
        dtype = checkpoint_dtype(self._model_dir) if d.dtype == "auto" else d.dtype
        longest = self.longest_sequence(requests)
        max_len = model_config(self._model_dir).get("max_position_embeddings") or 2048
        demand = KvDemand(max_num_seqs=d.max_num_seqs, longest_sequence_tokens=longest,
                          max_model_len=min(longest or max_len, max_len), block_size=1, reserved_blocks=0,
                          bytes_per_token=kv_bytes_per_token(self._model_dir, dtype) or 1)
        free = gpu_memory(int(device.partition(":")[2] or 0)) if device.startswith("cuda") else host_memory()
        if free is None:
            return None
        weights, weights_source = weights_estimate(self._model_dir, dtype, d.quantization)
        reserve, reserve_source = RUNTIME_RESERVE[("transformers", "cuda" if device.startswith("cuda") else "cpu")]
        if d.enable_prefix_caching:
            reserve += int(d.prefix_cache_mb * 2**20)
            reserve_source += f" + prefix cache budget {d.prefix_cache_mb:g} MiB"
        plan = plan_memory("auto", demand, weights, weights_source, (reserve, reserve_source), free, can_cap=False)
        self.memory_plan = plan
        if not plan.fits:
            raise InsufficientMemory(plan)
        return plan

    async def start(self) -> None:
        import psutil

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self._proc = psutil.Process()
        self._device = self._resolve_device()
        self.rss_before_load_bytes = self._rss()
        await asyncio.to_thread(self._load, self._device)
        self.rss_after_load_bytes = self._rss()
        self._sample_cuda()
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._batcher(), name="transformers-batcher")

    def _sample_cuda(self) -> None:
        if self._device and self._device.startswith("cuda"):
            import torch

            self.cuda_max_allocated_bytes = int(torch.cuda.max_memory_allocated())

    # ---------------------------------------------------------------- requests

    def _prompt_ids(self, request: Request) -> list[int]:
        if request.messages is not None:
            ids = self._tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # BatchEncoding in newer transformers
                ids = ids["input_ids"]
            if ids and isinstance(ids[0], list):
                ids = ids[0]
            return [int(i) for i in ids]
        return list(self._tokenizer(request.prompt)["input_ids"])

    async def generate(self, request: Request) -> AsyncIterator[Chunk | Usage]:
        if self._queue is None or self._task is None or self._task.done():
            raise RequestFailed("engine 'transformers' is not running")
        try:
            ids = self._prompt_ids(request)
        except Exception as exc:
            raise RequestFailed(f"cannot tokenize request: {type(exc).__name__}: {exc}") from exc
        if not ids:
            raise RequestFailed("empty prompt")
        pending = _Pending(request, ids)
        if request.seed is not None and request.temperature > 0:
            import torch

            pending.generator = torch.Generator(device="cpu").manual_seed(int(request.seed))
        self._queue.put_nowait(pending)
        produced = 0
        try:
            while True:
                event = await pending.events.get()
                if event is _END:
                    break
                if isinstance(event, BaseException):
                    raise RequestFailed(f"{type(event).__name__}: {event}") from event
                produced += 1
                yield Chunk(event, 1)
        finally:
            if not pending.finished:
                pending.cancelled = True  # the consumer went away: the batcher stops tracking this row
        yield Usage(len(ids), produced, "engine", pending.finish_reason)

    # ---------------------------------------------------------------- batching

    async def _batcher(self) -> None:
        loop = asyncio.get_running_loop()
        limit = max(1, int(self.deployment.max_num_seqs or 1))
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + BATCH_WAIT_S
            while len(batch) < limit:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except (asyncio.TimeoutError, TimeoutError):
                    break
            batch = [p for p in batch if not p.cancelled]
            if not batch:
                continue
            try:
                await self._run_batch(batch)
            except asyncio.CancelledError:
                for p in batch:
                    if not p.finished:
                        p.finished = True
                        p.events.put_nowait(RuntimeError("engine stopped"))
                raise
            except Exception as exc:  # a failed batch fails its requests, not the engine
                for p in batch:
                    if not p.finished:
                        p.finished = True
                        p.events.put_nowait(exc)

    def _prefill(self, batch: list[_Pending]):
        """One forward over the batch's prompts. With the prefix cache, each row's cached prefix KV is laid out
        right-aligned in a past segment and only the rest of its prompt is computed: rows look like
        [pad][cached prefix][pad][rest of prompt], the attention mask hides the pads and positions are explicit."""
        import torch

        hits = [self._prefix_cache.lookup(p.prompt_ids) if self._prefix_cache else None for p in batch]
        cached = [h[1] if h else 0 for h in hits]
        rests = [p.prompt_ids[n:] for p, n in zip(batch, cached)]
        past_len, width = max(cached), max(len(r) for r in rests)
        pad = self._tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), past_len + width), dtype=torch.long)
        for row, (rest, n) in enumerate(zip(rests, cached)):
            input_ids[row, width - len(rest):] = torch.tensor(rest, dtype=torch.long)
            mask[row, past_len - n:past_len] = 1
            mask[row, past_len + width - len(rest):] = 1
        device = self._model.device
        input_ids, mask = input_ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        past = self._past_from_hits(hits, past_len) if past_len else None
        with torch.inference_mode():
            out = self._model(input_ids=input_ids, attention_mask=mask, position_ids=positions[:, past_len:],
                              past_key_values=past, use_cache=True)
            if self._prefix_cache is not None:
                self._remember_prompts(batch, out.past_key_values, mask)
        self._rss()
        return out.logits[:, -1, :].float(), out.past_key_values, mask, positions[:, -1:]

    def _past_from_hits(self, hits, past_len: int):
        """A DynamicCache of `past_len` slots per row, each row's cached prefix right-aligned (zeros elsewhere:
        masked out)."""
        import torch
        from transformers.cache_utils import DynamicCache

        layers = []
        template = next(h for h in hits if h)[0]
        for i, (k0, v0) in enumerate(template):
            k = torch.zeros((len(hits), k0.shape[0], past_len, k0.shape[-1]), dtype=k0.dtype, device=k0.device)
            v = torch.zeros((len(hits), v0.shape[0], past_len, v0.shape[-1]), dtype=v0.dtype, device=v0.device)
            for row, hit in enumerate(hits):
                if hit:
                    kr, vr = hit[0][i]
                    k[row, :, past_len - kr.shape[1]:] = kr
                    v[row, :, past_len - vr.shape[1]:] = vr
            layers.append((k, v))
        return DynamicCache(layers)

    def _remember_prompts(self, batch: list[_Pending], past, mask) -> None:
        """Keep each prompt's KV (the unmasked slots of its row) for later prompts that share its prefix."""
        valid = mask.bool()
        for row, p in enumerate(batch):
            keep = valid[row]
            self._prefix_cache.insert(
                p.prompt_ids, [(layer.keys[row][:, keep], layer.values[row][:, keep]) for layer in past.layers]
            )

    def _step(self, tokens, past, mask, last_pos):
        import torch

        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
        pos = last_pos + 1
        with torch.inference_mode():
            out = self._model(
                input_ids=tokens, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True
            )
        self._rss()
        return out.logits[:, -1, :].float(), out.past_key_values, mask, pos

    def _pick(self, logits, batch: list[_Pending]):
        """Next token per row: argmax at temperature 0, else temperature + top-p sampling."""
        import torch

        greedy = logits.argmax(dim=-1)
        picks = greedy.clone()
        for row, p in enumerate(batch):
            t = p.request.temperature
            if t is None or t <= 0 or p.finished:
                continue
            probs = torch.softmax(logits[row] / t, dim=-1)
            top_p = p.request.top_p if p.request.top_p is not None else 1.0
            if 0 < top_p < 1:
                sorted_probs, order = probs.sort(descending=True)
                keep = sorted_probs.cumsum(-1) - sorted_probs < top_p  # keep up to and including the crossing token
                sorted_probs = sorted_probs * keep
                probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
            gen = p.generator if p.generator is not None and p.generator.device == probs.device else None
            picks[row] = torch.multinomial(probs, 1, generator=gen)[0]
        return picks

    def _emit(self, p: _Pending, token: int) -> None:
        """Record one generated token for a live row and push its text delta (or finish the row)."""
        if token in self._eos_ids and not p.request.ignore_eos:
            p.finished, p.finish_reason = True, "stop"
            p.events.put_nowait(_END)
            return
        p.generated.append(token)
        text = self._tokenizer.decode(p.generated, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for the rest of it
            delta = ""
        elif text.startswith(p.text):
            delta, p.text = text[len(p.text):], text
        else:  # decoding of earlier tokens changed (rare): send what is new beyond the common prefix
            common = os.path.commonprefix([text, p.text])
            delta, p.text = text[len(common):], text
        p.events.put_nowait(delta)
        if len(p.generated) >= p.request.max_tokens:
            p.finished, p.finish_reason = True, "length"
            p.events.put_nowait(_END)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        self.batches_run += 1
        self.max_batch_seen = max(self.max_batch_seen, len(batch))
        for p in batch:
            if p.request.max_tokens <= 0:
                p.finished, p.finish_reason = True, "length"
                p.events.put_nowait(_END)
        if all(p.finished for p in batch):
            return
        logits, past, mask, pos = await asyncio.to_thread(self._prefill, batch)
        while True:
            picks = self._pick(logits, batch).tolist()
            for row, p in enumerate(batch):
                if p.cancelled and not p.finished:
                    p.finished = True
                if not p.finished:
                    self._emit(p, int(picks[row]))
            if all(p.finished for p in batch):
                break
            tokens = self._model_tensor(picks)
            logits, past, mask, pos = await asyncio.to_thread(self._step, tokens, past, mask, pos)
        self._sample_cuda()
        del past

    def _model_tensor(self, picks: list[int]):
        import torch

        return torch.tensor(picks, dtype=torch.long, device=self._model.device).unsqueeze(-1)

    # ---------------------------------------------------------------- lifecycle

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._queue is not None:  # requests that never got into a batch
            while not self._queue.empty():
                p = self._queue.get_nowait()
                p.finished = True
                p.events.put_nowait(RuntimeError("engine stopped"))
            self._queue = None
        self._sample_cuda()
        if self._model is not None:
            self._model = None
            gc.collect()
            if self._device and self._device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "engine": self.name,
            "transformers_version": _module_version("transformers"),
            "torch_version": _module_version("torch"),
        }
        bnb = _module_version("bitsandbytes")
        if bnb is not None:
            info["bitsandbytes_version"] = bnb
        q = self.deployment.quantization
        if q and q.startswith("torchao-"):
            info["torchao_version"] = _module_version("torchao")
        if q == "quanto-int8":
            info["optimum_quanto_version"] = _module_version("optimum.quanto")
        self._rss()
        info.update(
            model_dir=self._model_dir,
            dtype=self.deployment.dtype,
            quantization=q,
            device=self._device,
            max_num_seqs=self.deployment.max_num_seqs,
            enable_prefix_caching=self.deployment.enable_prefix_caching,
            prefix_caching=self.prefix_caching_status,
            weights_bytes=self.weights_bytes,
            rss_before_load_bytes=self.rss_before_load_bytes,
            rss_after_load_bytes=self.rss_after_load_bytes,
            peak_rss_bytes=self.peak_rss_bytes,
            batching="static",
            memory_plan=self.memory_plan.model_dump() if self.memory_plan else None,
            batches_run=self.batches_run,
            max_batch_seen=self.max_batch_seen,
        )
        if self._prefix_cache is not None:
            info.update(self._prefix_cache.stats())
        if self.cuda_max_allocated_bytes is not None:
            info["cuda_max_allocated_bytes"] = self.cuda_max_allocated_bytes
        return info


ENGINE = TransformersEngine
