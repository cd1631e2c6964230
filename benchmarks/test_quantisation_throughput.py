"""Output tokens/s of the quantisation levels on the same prompts, with the transformers engine on the bundled
SmolLM2, as ratios to bf16 measured in the same run (absolute figures on a shared machine mean little).

The ratios depend on the CPU (its vector units decide which kernels are fast), so the table names the machine.
Run: make bench   (the table is printed and stored in the benchmark JSON's extra_info)"""

import asyncio
import time
from types import SimpleNamespace

from infercost.engines.base import Chunk
from infercost.engines.transformers_engine import TransformersEngine
from infercost.provenance import hardware
from infercost.workload.requests import Request

LEVELS = ("none", "bnb-int8", "bnb-nf4", "bnb-fp4", "torchao-int8")
PROMPTS = ["What is the capital of France?", "Name three primary colours.", "What does CPU stand for?",
           "How do I reset my password?"]


def deployment(quantization):
    return SimpleNamespace(engine="transformers", model="smollm2-135m-instruct", dtype="bfloat16",
                           quantization=quantization, max_num_seqs=4, enable_prefix_caching=False, device="auto",
                           name=None, label=lambda: quantization)


async def tokens_per_second(quantization, max_tokens=24, rounds=2):
    engine = TransformersEngine(deployment(quantization))
    await engine.start()
    try:
        async def one(i, prompt):
            request = Request(id=f"{quantization}-{i}", messages=[{"role": "user", "content": prompt}],
                              max_tokens=max_tokens, ignore_eos=True)
            count = 0
            async for event in engine.generate(request):
                count += isinstance(event, Chunk)
            return count

        await asyncio.gather(*(one(i, p) for i, p in enumerate(PROMPTS)))  # warm-up
        start, tokens = time.perf_counter(), 0
        for r in range(rounds):
            tokens += sum(await asyncio.gather(*(one(i, p) for i, p in enumerate(PROMPTS))))
        rate = tokens / (time.perf_counter() - start)
        return rate, engine.describe()["weights_bytes"]
    finally:
        await engine.stop()


def measure_all():
    return {q: asyncio.run(tokens_per_second(q)) for q in LEVELS}


def test_quantisation_levels_relative_to_bf16(benchmark):
    results = benchmark.pedantic(measure_all, rounds=1, iterations=1)
    base_rate, base_bytes = results["none"]
    table = {q: {"tok_s": round(rate, 1), "speed_vs_bf16": round(rate / base_rate, 2),
                 "weights_mib": round(size / 2**20, 1), "weights_vs_bf16": round(size / base_bytes, 2)}
             for q, (rate, size) in results.items()}
    hw = hardware()
    machine = f"{hw['cpu_model']}, {hw['cpu_usable_cores']} usable cores ({hw['cpu_logical_cores']} logical)"
    benchmark.extra_info["levels"] = table
    benchmark.extra_info["machine"] = machine
    print(f"\nquantisation speed and size relative to bf16 on {machine}")
    print(f"{'quantisation':<14}{'tok/s':>8}{'speed/bf16':>12}{'weights MiB':>13}{'weights/bf16':>14}")
    for q, row in table.items():
        print(f"{'bf16' if q == 'none' else q:<14}{row['tok_s']:>8.1f}{row['speed_vs_bf16']:>12.2f}"
              f"{row['weights_mib']:>13.1f}{row['weights_vs_bf16']:>14.2f}")
    assert table["bnb-nf4"]["weights_vs_bf16"] < 0.8
    assert all(row["tok_s"] > 0 for row in table.values())
