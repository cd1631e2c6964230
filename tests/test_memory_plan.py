"""KV-cache sizing and the preflight against simulated machines: the same deployment must get the same absolute KV
cache on any machine that can hold it, a cache capped by what is free where it cannot hold it all, and a one-line
"does not fit" where even one sequence cannot fit. Machines are simulated by their free-memory readings; the
readers are checked on fake sysfs/cgroup files."""

import pytest

from infercost.engines.machine import FreeMemory, cgroup_limit, clamp, node_available, parse_node_meminfo
from infercost.engines.memory import (
    RUNTIME_RESERVE,
    GiB,
    KvDemand,
    checkpoint_parameters,
    kv_bytes_per_token,
    plan_memory,
    weights_estimate,
)
from infercost.errors import InputError
from infercost.spec import load_deployment
from infercost.spec.sizes import parse_kv_setting

GB = 10**9
# SmolLM2-135M in float32 on vLLM's CPU backend: 30 layers x 3 KV heads x 64 dims x 2 (K and V) x 4 bytes.
SMOL = dict(weights=538_060_032, bpt=2 * 30 * 3 * 64 * 4)
# Llama 3.1 8B / 70B in bfloat16: 32 (80) layers x 8 KV heads x 128 dims x 2 x 2 bytes.
LLAMA8B = dict(weights=16_060_522_496, bpt=2 * 32 * 8 * 128 * 2)
LLAMA70B = dict(weights=141_107_412_992, bpt=2 * 80 * 8 * 128 * 2)
CPU_RESERVE = RUNTIME_RESERVE[("vllm", "cpu")]
GPU_RESERVE = RUNTIME_RESERVE[("vllm", "cuda")]


def cpu_node(total_gib: float, resident_gib: float) -> FreeMemory:
    """A NUMA node of `total_gib` of which `resident_gib` is held by the OS and other processes."""
    return FreeMemory(device="cpu", where="NUMA node 0", total_bytes=int(total_gib * GiB),
                      available_bytes=int((total_gib - resident_gib) * GiB), source="simulated")


def gpu(total_gb: float, held_by_others_gb: float, name: str) -> FreeMemory:
    return FreeMemory(device="cuda", where=f"GPU 0 ({name})", total_bytes=int(total_gb * GB),
                      available_bytes=int((total_gb - held_by_others_gb) * GB), source="simulated")


def demand(model, seqs=16, longest=176, max_model_len=2048, block=128) -> KvDemand:
    return KvDemand(max_num_seqs=seqs, longest_sequence_tokens=longest, max_model_len=max_model_len,
                    block_size=block, bytes_per_token=model["bpt"])


def plan(model, free, setting="auto", share=None, reserve=CPU_RESERVE, **kw):
    return plan_memory(setting, demand(model, **kw), model["weights"], "test", reserve, free, share)


# The node of the machine in the report (9.84 GiB, ~7.45 available) and others from 8 to 512 GiB, each with a
# realistic resident size (OS, page tables, other processes).
CPU_NODES = [(8, 2.0), (9.84, 2.4), (16, 3.0), (64, 6.0), (512, 20.0)]


@pytest.mark.parametrize(("total", "resident"), CPU_NODES)
def test_the_auto_kv_cache_is_what_the_workload_uses_whatever_the_node(total, resident):
    p = plan(SMOL, cpu_node(total, resident))
    assert p.fits, p.reason
    # 16 sequences of 176 tokens, in 128-token blocks (2 each), + vLLM's reserved block: the same on every node
    assert p.kv_cache_tokens == (16 * 2 + 1) * 128
    assert p.kv_cache_bytes == p.kv_cache_tokens * SMOL["bpt"]
    assert p.sequences_held == 16
    assert p.needed_bytes == SMOL["weights"] + p.kv_cache_bytes + CPU_RESERVE[0]
    assert "capped" not in p.kv_cache_source


def test_at_least_one_max_model_len_sequence_is_always_asked_for():
    p = plan(SMOL, cpu_node(9.84, 2.4), seqs=1, longest=50)
    assert p.kv_cache_tokens == (2048 // 128 + 1) * 128  # vLLM refuses to start below one full sequence


@pytest.mark.parametrize(("total", "resident", "held"), [(16, 3.0, None), (64, 6.0, 20), (512, 20.0, 20)])
def test_a_big_deployment_is_capped_by_the_node_or_gets_all_it_can_use(total, resident, held):
    """Llama 8B bf16 on CPU nodes, 64 sequences of up to 2048 tokens: 16.1 GiB of cache wanted."""
    p = plan(LLAMA8B, cpu_node(total, resident), seqs=64, longest=2048, max_model_len=4096)
    if total == 16:  # 13 GiB free cannot hold 15 GiB of weights
        assert not p.fits
        assert p.reason.startswith("needs ") and "NUMA node 0 has 13.00 GiB free" in p.reason
        return
    assert p.fits, p.reason
    if held is not None and total == 64:  # 58 GiB free: 58 - 15 - 1.3 leaves ~41.7 GiB, more than wanted
        assert p.sequences_held == 64 and "capped" not in p.kv_cache_source
    assert p.needed_bytes <= p.available_bytes


def test_auto_is_capped_by_free_memory_and_says_so():
    free = cpu_node(24, 0.5)  # 23.5 GiB free; weights 15 GiB + reserve 1.3 GiB leave ~7.2 GiB for the cache
    p = plan(LLAMA8B, free, seqs=64, longest=2048, max_model_len=4096)
    assert p.fits, p.reason
    assert "capped by the 23.50 GiB free on NUMA node 0" in p.kv_cache_source
    assert p.needed_bytes <= free.available_bytes
    assert 0 < p.sequences_held < 64
    assert p.kv_cache_bytes % (128 * LLAMA8B["bpt"]) == 0  # whole blocks


@pytest.mark.parametrize(("total", "held", "name", "model", "fits", "held_seqs"), [
    (24, 1.0, "L4", LLAMA8B, True, None),             # 23 GB free: weights + cache for some of the 64 sequences
    (80, 30.0, "H100", LLAMA8B, True, 64),            # another process holds 30 GB: 50 GB is still plenty
    (80, 70.0, "H100", LLAMA8B, False, None),         # 10 GB free: not even the weights
    (141, 10.0, "H200", LLAMA70B, False, None),       # 70B bf16 needs 141 GB of weights alone
])
def test_gpus_with_other_processes_holding_memory(total, held, name, model, fits, held_seqs):
    free = gpu(total, held, name)
    p = plan(model, free, reserve=GPU_RESERVE, seqs=64, longest=2048, max_model_len=4096, block=16)
    assert p.fits is fits, p.reason
    if fits:
        assert p.needed_bytes <= free.available_bytes
        if held_seqs:
            assert p.sequences_held == held_seqs
        else:
            assert 0 < p.sequences_held < 64 and "capped" in p.kv_cache_source
    else:
        assert f"GPU 0 ({name}) has" in p.reason and "free" in p.reason and "\n" not in p.reason


def test_a_share_set_by_the_user_is_checked_as_vllm_would():
    free = gpu(80, 20.0, "H100")  # 60 GB free: 0.9 x 80 GB = 72 GB cannot be had
    p = plan(LLAMA8B, free, share=0.9, reserve=GPU_RESERVE)
    assert not p.fits and "gpu_memory_utilization 0.9 asks for" in p.reason
    assert plan(LLAMA8B, free, share=0.5, reserve=GPU_RESERVE).fits


@pytest.mark.parametrize(("setting", "tokens", "fits"), [("512MiB", 512 * 2**20 // SMOL["bpt"], True),
                                                         ("4096 tokens", (32 + 1) * 128, True),
                                                         ("64MiB", None, False), ("6GiB", None, False)])
def test_a_kv_cache_size_set_by_the_user(setting, tokens, fits):
    p = plan(SMOL, cpu_node(8, 2.0), setting=setting)
    assert p.fits is fits, p.reason
    if tokens is not None:
        assert p.kv_cache_tokens == tokens
    elif setting == "64MiB":
        assert "holds less than one 2048-token sequence" in p.reason
    else:
        assert "NUMA node 0 has 6.00 GiB free" in p.reason


@pytest.mark.parametrize(("value", "expected"), [
    ("auto", ("auto", None)), (1024, ("bytes", 1024)), ("512MiB", ("bytes", 512 * 2**20)),
    ("1.5GiB", ("bytes", int(1.5 * 2**30))), ("2GB", ("bytes", 2 * 10**9)), ("8192 tokens", ("tokens", 8192)),
])
def test_kv_cache_settings_parse(value, expected):
    assert parse_kv_setting(value) == expected


@pytest.mark.parametrize("value", ["lots", "-1GiB", "0", "1.5 parsecs", True, "[1, 2]"])
def test_bad_kv_cache_settings_are_one_line_errors(value):
    with pytest.raises(InputError) as err:
        load_deployment(None, [f"kv_cache_memory={value}"])
    assert "kv_cache_memory" in str(err.value) and "\n" not in str(err.value)


def test_a_share_and_a_size_together_are_refused():
    with pytest.raises(InputError, match="not both"):
        load_deployment(None, ["kv_cache_memory=1GiB", "gpu_memory_utilization=0.5"])


def test_node_meminfo_is_read_with_vllms_formula():
    text = "\n".join(f"Node 0 {k}: {v} kB" for k, v in [("MemTotal", 10_318_000), ("MemFree", 4_000_000),
                                                          ("Active(file)", 500_000), ("Inactive(file)", 2_000_000),
                                                          ("SReclaimable", 100_000), ("AnonPages", 900_000)])
    info = parse_node_meminfo(text)
    assert info["MemTotal"] == 10_318_000 * 1024
    assert node_available(info) == 6_600_000 * 1024


def test_the_cgroup_limit_and_the_host_clamp_what_the_node_offers(tmp_path):
    (tmp_path / "memory.max").write_text(f"{6 * GiB}\n")
    (tmp_path / "memory.current").write_text(f"{2 * GiB}\n")
    limit = cgroup_limit(tmp_path)
    assert limit == (6 * GiB, 2 * GiB)
    node = cpu_node(64, 4.0)
    clamped = clamp(node, limit, host_available=100 * GiB)
    assert clamped.available_bytes == 4 * GiB and "cgroup" in clamped.source
    assert clamp(node, None, host_available=3 * GiB).available_bytes == 3 * GiB
    (tmp_path / "memory.max").write_text("max\n")
    assert cgroup_limit(tmp_path) is None


def test_the_bundled_checkpoint_is_measured_without_loading_it(smollm2_dir):
    assert checkpoint_parameters(smollm2_dir) == 134_515_008
    assert weights_estimate(smollm2_dir, "float32", None)[0] == SMOL["weights"]
    assert weights_estimate(smollm2_dir, "bfloat16", None)[0] == SMOL["weights"] // 2
    assert kv_bytes_per_token(smollm2_dir, "float32") == SMOL["bpt"]


def test_a_long_default_context_is_refused_with_what_the_workload_needs():
    """A model whose config allows 256k tokens cannot hold one such sequence on a small node: the line says the
    workload only needs its longest sequence."""
    p = plan(SMOL, cpu_node(9.84, 2.4), seqs=4, longest=300, max_model_len=262_144)
    assert not p.fits
    assert "for one 262144-token sequence" in p.reason and "the workload needs max_model_len 300 at most" in p.reason
