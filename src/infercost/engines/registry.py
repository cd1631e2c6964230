"""Engines by name. Each engine module registers itself; heavy imports (vllm, torch) happen only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from infercost.engines.base import Engine
from infercost.errors import InputError

if TYPE_CHECKING:
    from infercost.spec.deployment import Deployment

# name -> module that defines it; imported lazily so `infercost schema` does not import vLLM.
_MODULES = {
    "vllm": "infercost.engines.vllm_engine",
    "transformers": "infercost.engines.transformers_engine",
    "openai": "infercost.engines.openai_engine",
}


def engine_names() -> list[str]:
    return sorted(_MODULES)


def engine_class(name: str) -> type[Engine[Any]]:
    if name not in _MODULES:
        raise InputError(f"unknown engine '{name}': expected one of {', '.join(engine_names())}", field="engine")
    module = importlib.import_module(_MODULES[name])
    return module.ENGINE


def create_engine(deployment: Deployment) -> Engine[Any]:
    """The engine the deployment's `engine` key names, built on that deployment."""
    return engine_class(deployment.engine)(deployment)
