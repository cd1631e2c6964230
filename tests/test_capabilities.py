"""The capability table: probed for real on this machine, cached, and fed by real vLLM verdicts. What works here
(bitsandbytes, torchao, a vLLM build) differs between machines: the tests check the table's shape and verdict format
and only what holds everywhere."""

import json

import pytest

from infercost.cli import main
from infercost.engines import capabilities as caps
from infercost.engines.transformers_engine import _module_version


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERCOST_CACHE", str(tmp_path))
    return tmp_path


def _is_verdict(verdict: str) -> bool:
    """"yes" (possibly with a note in parentheses) or "no: <reason>": what a library can do here is the machine's
    business, not a test invariant."""
    return verdict == "yes" or verdict.startswith("yes (") or (verdict.startswith("no: ") and len(verdict) > 4)


def test_transformers_quantisations_are_probed_and_cached(isolated_cache):
    table = caps.capabilities()
    assert {"cpu_model", "cpu_usable_cores", "gpus"} <= set(table["hardware"])
    tf = table["engines"]["transformers"]
    assert tf["device"] in ("cpu", "cuda")
    assert set(tf["quantization"]) == set(caps.TRANSFORMERS_QUANTISATIONS)
    assert set(tf["dtypes"]) == set(caps.DTYPES)
    for group in ("dtypes", "quantization"):
        for option, verdict in tf[group].items():
            assert _is_verdict(verdict), (group, option, verdict)
    assert tf["dtypes"]["float32"] == "yes"  # plain fp32 arithmetic runs wherever torch does
    if _module_version("optimum.quanto") is None:  # a missing package is named in the reason
        assert "optimum-quanto" in tf["quantization"]["quanto-int8"]
    assert _is_verdict(tf["prefix_caching"])
    vllm = table["engines"]["vllm"]
    assert _is_verdict(vllm["available"])
    if vllm["available"].startswith("yes"):
        assert vllm["prefix_caching"] == "yes" and all(_is_verdict(v) for v in vllm["dtypes"].values())
    # cached: the second call reads the file instead of probing
    path = caps._cache_path()
    stamp = path.stat().st_mtime_ns
    assert caps.capabilities() == table and path.stat().st_mtime_ns == stamp


def test_real_vllm_verdicts_are_recorded_and_kept_on_refresh(isolated_cache):
    caps.capabilities()
    caps.record_vllm_verdict("fp8", "no: RuntimeError: missing kernel")
    assert caps.capabilities()["engines"]["vllm"]["quantization"]["fp8"].startswith("no: ")
    refreshed = caps.capabilities(refresh=True)
    assert refreshed["engines"]["vllm"]["quantization"]["fp8"] == "no: RuntimeError: missing kernel"


def test_engines_command(isolated_cache, capsys):
    assert main(["engines", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["engines"]) == {"vllm", "transformers", "openai"}
