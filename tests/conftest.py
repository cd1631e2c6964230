import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ROOT / "workloads"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The bundled SmolLM2, converted once (cached across sessions in ~/.cache/infercost)."""
    from infercost.models import resolve_model

    return Path(resolve_model("smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def vllm_server(smollm2_dir, tmp_path_factory):
    """A real vLLM OpenAI-compatible server on loopback, serving the bundled SmolLM2 as "smollm2", bound to the
    CPUs this process may use (not to the core ids of one machine)."""
    from infercost.crosscheck import vllm_server as serve

    with serve(smollm2_dir, "smollm2", log=tmp_path_factory.mktemp("vllm-server") / "server.log") as url:
        yield url


def replay(url: str, workload, model: str = "stub"):
    """Replay `workload` through the openai engine against `url` (the stub server, in tests of timing the stub makes
    known); returns (the load generator, its records)."""
    import asyncio

    from infercost.engines import create_engine
    from infercost.loadgen import LoadGenerator
    from infercost.spec.deployment import OpenAIDeployment
    from infercost.workload.requests import build_requests

    async def go():
        engine = create_engine(OpenAIDeployment(engine="openai", model=model, base_url=url))
        await engine.start()
        try:
            gen = LoadGenerator(engine, build_requests(workload), workload.traffic)
            return gen, await gen.run()
        finally:
            await engine.stop()

    return asyncio.run(go())
