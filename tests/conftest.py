import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infercost.loadgen.stub_server import free_port

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
    """A real vLLM OpenAI-compatible server on loopback, serving the bundled SmolLM2."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(os.environ, VLLM_LOGGING_LEVEL="WARNING", VLLM_CPU_OMP_THREADS_BIND="0-1",
               VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(smollm2_dir),
             "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port),
             "--max-model-len", "2048", "--kv-cache-memory-bytes", str(256 * 2**20), "--max-num-seqs", "16",
             "--enforce-eager", "--dtype", "float32"],
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("vLLM server did not come up in 600 s")
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
