"""The transformers engine on the bundled SmolLM2 on the CPU: unquantised bf16 and bitsandbytes int8 / nf4 and torchao
int8 where the capability probe says this machine runs them, with 4 concurrent chat requests forming one static
batch."""

import asyncio
import importlib.util
import time

import pytest

from infercost.engines.base import Chunk, Usage
from infercost.errors import EngineUnavailable
from infercost.spec.deployment import TransformersDeployment
from infercost.workload.requests import Request

pytest.importorskip("transformers")
pytest.importorskip("torch")
pytest.importorskip("psutil")

from infercost.engines.transformers_engine import ENGINE, TransformersEngine  # noqa: E402

QUESTIONS = ["What is the capital of France?", "Name a primary color.", "What is 2 + 2?", "Say hello politely."]
MAX_TOKENS = 12


def _unsupported_here(quantization: str) -> str | None:
    """The capability probe's reason when this machine cannot run `quantization` (None when it can): whether
    bitsandbytes or torchao work depends on the CPU or GPU and the build, so that is a skip, not a failure."""
    from infercost.engines.capabilities import capabilities

    verdict = capabilities()["engines"]["transformers"]["quantization"][quantization]
    return None if verdict == "yes" else verdict


def deployment(quantization: str, **kw) -> TransformersDeployment:
    base = dict(engine="transformers", model="smollm2-135m-instruct", dtype="bfloat16", quantization=quantization,
                max_num_seqs=4, enable_prefix_caching=False, prefix_cache_mb=1024, device="auto",
                name=f"transformers-{quantization}")
    base.update(kw)
    return TransformersDeployment.model_validate(base)


@pytest.fixture(scope="module")
def measured() -> dict:
    """weights_bytes and tokens/s per quantization, filled by the runs below (module-scoped, read by later tests)."""
    return {}


async def _run(quantization: str):
    engine = TransformersEngine(deployment(quantization))
    await engine.start()
    try:
        async def one(i: int, question: str):
            chunks: list[tuple[float, Chunk]] = []
            usage = []
            req = Request(id=f"r{i}", messages=[{"role": "user", "content": question}], max_tokens=MAX_TOKENS,
                          temperature=0.0)
            async for item in engine.generate(req):
                if isinstance(item, Chunk):
                    chunks.append((time.perf_counter(), item))
                else:
                    assert isinstance(item, Usage)
                    usage.append(item)
            return chunks, usage

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(i, q) for i, q in enumerate(QUESTIONS)))
        elapsed = time.perf_counter() - t0
        return results, elapsed, engine.describe()
    finally:
        await engine.stop()


def _check(results, info, quantization):
    for chunks, usage in results:
        assert len(usage) == 1
        u = usage[0]
        assert 1 <= len(chunks) <= MAX_TOKENS
        assert u.output_tokens == len(chunks)
        assert all(c.tokens == 1 for _, c in chunks)
        assert u.input_tokens and u.input_tokens > 5
        assert u.source == "engine" and u.finish_reason in ("length", "stop")
        assert (u.finish_reason == "length") == (len(chunks) == MAX_TOKENS)
        times = [t for t, _ in chunks]
        assert all(b > a for a, b in zip(times, times[1:]))  # each token timestamped on arrival
    assert info["engine"] == "transformers" and info["batching"] == "static"
    assert info["quantization"] == quantization and info["device"] in ("cpu", "cuda")
    assert info["weights_bytes"] > 0
    assert info["rss_after_load_bytes"] > 0 and info["peak_rss_bytes"] >= info["rss_after_load_bytes"]
    assert info["transformers_version"] and info["torch_version"]
    assert info["max_batch_seen"] >= 2  # concurrent requests were batched together


@pytest.mark.parametrize("quantization", ["none", "bnb-int8", "bnb-nf4"])
def test_real_model_streams_and_measures(quantization, measured):
    if quantization != "none" and (reason := _unsupported_here(quantization)):
        pytest.skip(f"{quantization} here: {reason}")
    results, elapsed, info = asyncio.run(_run(quantization))
    _check(results, info, quantization)
    tokens = sum(u[0].output_tokens for _, u in results)
    measured[quantization] = {"weights_bytes": info["weights_bytes"], "tok_s": tokens / elapsed}
    print(f"\n{quantization}: weights_bytes={info['weights_bytes']} tok/s={tokens / elapsed:.2f} "
          f"peak_rss={info['peak_rss_bytes']}")
    if quantization == "none":
        answer = "".join(c.text for _, c in results[0][0])
        assert "Paris" in answer, answer


def test_nf4_weights_smaller_than_bf16(measured):
    if "none" not in measured or "bnb-nf4" not in measured:
        pytest.skip("needs the bf16 and nf4 runs above")
    assert measured["bnb-nf4"]["weights_bytes"] < 0.8 * measured["none"]["weights_bytes"]


def test_torchao_int8_weight_only(measured):
    # torchao is a project dependency: it must be installed; whether its kernels run is this machine's verdict
    assert importlib.util.find_spec("torchao") is not None
    if reason := _unsupported_here("torchao-int8"):
        pytest.skip(f"torchao-int8 here: {reason}")
    results, _, info = asyncio.run(_run("torchao-int8"))
    _check(results, info, "torchao-int8")
    # counted from the quantised tensors' storage, not their nominal bf16 size (get_memory_footprint's answer)
    assert info["weights_bytes"] < 0.8 * measured["none"]["weights_bytes"]


def test_quanto_missing_package_is_named():
    if importlib.util.find_spec("optimum") is not None and importlib.util.find_spec("optimum.quanto") is not None:
        pytest.skip("optimum-quanto installed")
    with pytest.raises(EngineUnavailable, match="optimum-quanto"):
        asyncio.run(TransformersEngine(deployment("quanto-int8")).start())


def test_generate_before_start_fails_per_request():
    from infercost.engines.base import RequestFailed

    async def go():
        engine = TransformersEngine(deployment("none"))
        async for _ in engine.generate(Request(id="x", prompt="hi", max_tokens=2)):
            pass

    with pytest.raises(RequestFailed):
        asyncio.run(go())


def test_module_exports_engine():
    assert ENGINE is TransformersEngine and ENGINE.name == "transformers"


def test_text_deltas_sampling_and_eos_without_a_model(smollm2_dir):
    """Token bookkeeping on the real tokenizer only: multi-byte text held back until whole, EOS ends the row with
    "stop" unless ignore_eos, max_tokens ends it with "length", and top_p sampling stays inside the nucleus."""
    import torch
    from transformers import AutoTokenizer

    from infercost.engines.transformers_engine import _END, _Pending

    engine = TransformersEngine(deployment("none"))
    engine._tokenizer = AutoTokenizer.from_pretrained(str(smollm2_dir))
    eos = engine._tokenizer.eos_token_id
    engine._eos_ids = {eos}
    ids = engine._tokenizer("héllo wörld €", add_special_tokens=False)["input_ids"]

    def drain(p):
        out = []
        while not p.events.empty():
            out.append(p.events.get_nowait())
        return out

    async def go():
        p = _Pending(Request(id="a", prompt="x", max_tokens=len(ids)), [1])
        for t in ids:
            engine._emit(p, t)
        events = drain(p)
        assert events[-1] is _END and p.finish_reason == "length"
        assert "".join(events[:-1]) == "héllo wörld €" and len(events) - 1 == len(ids)

        q = _Pending(Request(id="b", prompt="x", max_tokens=5), [1])
        engine._emit(q, ids[0])
        engine._emit(q, eos)
        assert drain(q)[-1] is _END and q.finish_reason == "stop" and q.generated == [ids[0]]

        r = _Pending(Request(id="c", prompt="x", max_tokens=5, ignore_eos=True), [1])
        engine._emit(r, eos)
        assert not r.finished and r.generated == [eos]

        logits = torch.full((2, 10), -1e9)
        logits[:, 3], logits[:, 7] = 5.0, 4.9
        rows = [_Pending(Request(id="g", prompt="x", temperature=0.0), [1]),
                _Pending(Request(id="s", prompt="x", temperature=1.0, top_p=0.4), [1])]
        for _ in range(20):
            picks = engine._pick(logits, rows).tolist()
            assert picks == [3, 3]  # greedy argmax; top_p 0.4 keeps only the most likely token
        rows[1].request.top_p = 1.0
        seen = {engine._pick(logits, rows).tolist()[1] for _ in range(200)}
        assert seen == {3, 7}

    asyncio.run(go())


def test_prefix_cache_reuses_shared_prompt_blocks_without_changing_answers():
    """A long shared system prompt: with prefix caching the later requests are prefilled from the first block they do
    not share, and greedy fp32 answers are the same tokens as without the cache."""
    system = "You are a helpful support assistant for Acme Cloud. " * 12

    async def run(enabled: bool):
        engine = TransformersEngine(deployment("none", dtype="float32", enable_prefix_caching=enabled,
                                               prefix_cache_mb=64))
        await engine.start()
        try:
            async def one(i, question):
                req = Request(id=f"p{i}", messages=[{"role": "system", "content": system},
                                                    {"role": "user", "content": question}],
                              max_tokens=MAX_TOKENS, temperature=0.0)
                return "".join([c.text async for c in engine.generate(req) if isinstance(c, Chunk)])

            first = [await one(0, QUESTIONS[0])]  # fills the cache
            rest = await asyncio.gather(*(one(i, q) for i, q in enumerate(QUESTIONS[1:], 1)))
            return first + list(rest), engine.describe()
        finally:
            await engine.stop()

    plain, info_off = asyncio.run(run(False))
    cached, info_on = asyncio.run(run(True))
    assert cached == plain
    assert info_off["prefix_caching"] == "off" and "prefix_cache_hit_tokens" not in info_off
    assert info_on["prefix_caching"].startswith("on")
    # the three later prompts share the system prompt's full blocks (well over 100 tokens each)
    assert info_on["prefix_cache_hit_tokens"] >= 3 * 100
    assert 0 < info_on["prefix_cache_hit_rate"] < 1
    assert 0 < info_on["prefix_cache_bytes"] <= 64 * 2**20


def test_prefix_cache_lookup_insert_and_eviction():
    import torch

    from infercost.engines.prefix_cache import BLOCK, PrefixKVCache

    def kv(n):  # one layer, 2 heads, n tokens, head dim 4; values encode the token position
        t = torch.arange(n, dtype=torch.float32).view(1, n, 1).expand(2, n, 4).contiguous()
        return [(t, t + 1000)]

    per_block = 2 * (2 * BLOCK * 4 * 4)  # keys + values bytes for one block
    cache = PrefixKVCache(max_bytes=5 * per_block)
    a = list(range(3 * BLOCK + 5))
    assert cache.lookup(a) is None
    cache.insert(a, kv(len(a)))
    assert cache.bytes == 3 * per_block  # full blocks only
    b = a[:2 * BLOCK] + [9999] * 20  # shares two blocks with a
    layers, n = cache.lookup(b)
    assert n == 2 * BLOCK and layers[0][0].shape == (2, 2 * BLOCK, 4)
    assert torch.equal(layers[0][0][0, :, 0], torch.arange(2 * BLOCK, dtype=torch.float32))
    exact = a[:3 * BLOCK]  # a prompt that is exactly the cached blocks still computes its last token
    assert cache.lookup(exact)[1] == 2 * BLOCK
    cache.insert(list(range(500, 500 + 3 * BLOCK)), kv(3 * BLOCK))  # over budget: the oldest entry goes
    assert cache.bytes == 3 * per_block and cache.lookup(b) is None
    assert cache.stats()["prefix_cache_hit_tokens"] == 4 * BLOCK
