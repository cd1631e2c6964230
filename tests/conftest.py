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
