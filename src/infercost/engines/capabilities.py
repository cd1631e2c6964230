"""What each engine can do on this machine: dtypes, quantisation methods, prefix caching. Probed for real (a tiny
random model is quantised and run; an engine is started where that is the only way to know) and cached per host,
so users and the search know the valid space before spending a measurement on it."""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path
from typing import Any, get_args

from infercost.engines.logs import output_to, root_error
from infercost.models.bundled import cache_root
from infercost.provenance import hardware, library_versions, spec_hash
from infercost.spec.vocabulary import CONCRETE_DTYPES, TRANSFORMERS_QUANTIZATIONS

TRANSFORMERS_QUANTISATIONS = TRANSFORMERS_QUANTIZATIONS
DTYPES = CONCRETE_DTYPES


def _cache_path() -> Path:
    host = spec_hash({"hw": hardware(), "versions": library_versions(), "python": platform.python_version()})
    return cache_root().parent / f"capabilities-{host}.json"


def _tiny_model(directory: Path) -> Path:
    """A 2-layer random Llama: enough to exercise every quantisation kernel in a second or two."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"


def probe_transformers() -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from infercost.engines.transformers_engine import TransformersEngine
    from infercost.spec.deployment import TransformersDeployment

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtypes = {}
    for name in DTYPES:
        try:
            x = torch.ones(16, 16, dtype=getattr(torch, name), device=device)
            (x @ x).sum().item()
            dtypes[name] = "yes"
        except Exception as exc:
            dtypes[name] = f"no: {_reason(exc)}"
    quantisation = {}
    with tempfile.TemporaryDirectory() as tmp:
        with output_to(Path(tmp) / "build.log"):
            model_dir = _tiny_model(Path(tmp) / "tiny")
        for method in TRANSFORMERS_QUANTISATIONS:
            engine = TransformersEngine(TransformersDeployment(engine="transformers", model=str(model_dir),
                                                               quantization=method))
            log = Path(tmp) / f"{method}.log"
            try:
                with output_to(log):  # loaders print long reports on failure; keep the terminal clean
                    config = engine._quantization_config(device)
                    kwargs = {"quantization_config": config} if config is not None else {}
                    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, device_map=device,
                                                                 **kwargs)
                    with torch.no_grad():
                        model(torch.tensor([[1, 2, 3, 4]], device=device))
                quantisation[method] = "yes"
            except Exception as exc:
                quantisation[method] = f"no: {root_error(log) or _reason(exc)}"
    return {"device": device, "dtypes": dtypes, "quantization": quantisation, "prefix_caching": "yes (16-token blocks; not for sliding-window models)",
            "batching": "static"}


def describe_vllm() -> dict[str, Any]:
    try:
        import vllm
        from vllm.config.cache import CacheDType
        from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
        from vllm.platforms import current_platform
    except ImportError as exc:
        return {"available": f"no: {_reason(exc)}"}
    return {
        "available": f"yes (vllm {vllm.__version__})",
        "device": current_platform.device_type,
        "dtypes": {str(d).removeprefix("torch."): "yes" for d in current_platform.supported_dtypes},
        "quantization": {},  # verdicts from real runs on this host, filled in as they happen
        "quantization_methods": list(QUANTIZATION_METHODS),
        "kv_cache_dtype": list(get_args(CacheDType)),
        "prefix_caching": "yes",
        "batching": "continuous",
        "note": "quantisation verdicts come from real runs on this host: a method this build or hardware cannot "
                "run ends its run as `infeasible` with vLLM's reason, and the verdict is recorded here",
    }


def capabilities(refresh: bool = False) -> dict[str, Any]:
    path = _cache_path()
    previous = json.loads(path.read_text()) if path.is_file() else None
    if previous and "transformers" in previous.get("engines", {}) and not refresh:
        return previous
    table = {
        "hardware": hardware(),
        "engines": {
            "vllm": describe_vllm(),
            "transformers": probe_transformers(),
            "openai": {"note": "whatever the server supports; infercost measures it as served"},
        },
    }
    if previous:  # verdicts from real runs stay
        table["engines"]["vllm"].setdefault("quantization", {}).update(
            previous.get("engines", {}).get("vllm", {}).get("quantization", {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=2))
    return table


def record_vllm_verdict(method: str, verdict: str) -> None:
    """Remember what a real vLLM start said about a quantisation method on this host."""
    path = _cache_path()
    table = json.loads(path.read_text()) if path.is_file() else {"hardware": hardware(), "engines": {}}
    table["engines"].setdefault("vllm", {}).setdefault("quantization", {})[method] = verdict
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=2))
