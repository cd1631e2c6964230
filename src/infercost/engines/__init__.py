"""Engines behind one interface: vLLM in-process, any OpenAI-compatible server."""

from infercost.engines.base import Chunk, Engine, RequestFailed, Usage
from infercost.engines.registry import create_engine, engine_names

__all__ = ["Chunk", "Engine", "RequestFailed", "Usage", "create_engine", "engine_names"]
