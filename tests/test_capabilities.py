"""The capability table: probed for real on this machine, cached, and fed by real vLLM verdicts."""

import json

import pytest

from infercost.cli import main
from infercost.engines import capabilities as caps


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERCOST_CACHE", str(tmp_path))
    return tmp_path


def test_transformers_quantisations_are_probed_and_cached(isolated_cache):
    table = caps.capabilities()
    tf = table["engines"]["transformers"]
    for method in ("none", "bnb-int8", "bnb-nf4", "torchao-int8"):
        assert tf["quantization"][method] == "yes", (method, tf["quantization"][method])
    for method, verdict in tf["quantization"].items():
        assert verdict == "yes" or verdict.startswith("no: "), (method, verdict)
    if not verdict_yes(tf, "quanto-int8"):
        assert "optimum-quanto" in tf["quantization"]["quanto-int8"]
    assert tf["dtypes"]["float32"] == "yes"
    assert table["engines"]["vllm"]["prefix_caching"] == "yes"
    # cached: the second call reads the file instead of probing
    path = caps._cache_path()
    stamp = path.stat().st_mtime_ns
    assert caps.capabilities() == table and path.stat().st_mtime_ns == stamp


def verdict_yes(engine, method):
    return engine["quantization"][method] == "yes"


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
