"""A calibration server, not a model: an OpenAI-compatible streaming endpoint with a fixed, known time to first token,
gap between tokens and output length. It exists to measure the load generator itself (its sustainable rate, schedule
lag and timing error) and to show behaviour a real server cannot be made to show on demand: stalls, HTTP 500s, a
stream that ends cleanly in the middle of an answer (no finish_reason, no [DONE]), a 401 whose body echoes the API key
(as some hosted APIs do), a vendor's rate limit (HTTP 429 with Retry-After), and a server that dies mid-run.

Run: python -m infercost.loadgen.stub_server --port 8001 --ttft-ms 50 --itl-ms 5 --tokens 16
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from typing import Iterator

from aiohttp import web


def make_app(ttft_ms: float, itl_ms: float, tokens: int, fail_every: int = 0, stall_every: int = 0,
             truncate_every: int = 0, echo_key_every: int = 0, die_after: int = 0, rate_limit_rps: float = 0,
             retry_after_s: float = 1.0, reasoning_tokens: int = 0) -> web.Application:
    """Every `fail_every`-th request gets an HTTP 500, every `stall_every`-th stalls, every `truncate_every`-th
    stream closes cleanly halfway through its answer, every `echo_key_every`-th gets a 401 whose body repeats the
    Authorization header it was sent, and the process exits at once (a crash) on request `die_after` + 1. With
    `rate_limit_rps`, a request beyond that many accepted in the last second gets a 429 with Retry-After, as a
    vendor's limit does. With `reasoning_tokens`, a chat answer is preceded by that many thinking tokens streamed as
    `reasoning_content`, as vLLM's reasoning parsers send them, and counted in usage as OpenAI does."""
    state = {"n": 0}
    accepted: collections.deque[float] = collections.deque()

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if rate_limit_rps:
            now = time.monotonic()
            while accepted and now - accepted[0] >= 1.0:
                accepted.popleft()
            if len(accepted) >= rate_limit_rps:
                return web.json_response({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
                                         status=429, headers={"Retry-After": f"{retry_after_s:g}"})
            accepted.append(now)
        state["n"] += 1
        n = state["n"]
        if die_after and n > die_after:
            os._exit(1)  # a crash: this connection drops, later ones are refused
        if fail_every and n % fail_every == 0:
            return web.json_response({"error": {"message": "injected failure"}}, status=500)
        if echo_key_every and n % echo_key_every == 0:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return web.json_response({"error": {"message": f"Incorrect API key provided: {sent}. You can find your "
                                                           "API key at https://example.invalid/keys.",
                                                "type": "invalid_request_error", "code": "invalid_api_key"}},
                                     status=401)
        chat = request.path.endswith("chat/completions")
        count = min(int(body.get("max_tokens") or tokens), tokens)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if stall_every and n % stall_every == 0:
            await asyncio.sleep(3600)  # a stalled request: the client's timeout must end it
        if ttft_ms:
            await asyncio.sleep(ttft_ms / 1e3)
        thinking = reasoning_tokens if chat else 0
        for i in range(thinking):
            if i and itl_ms:
                await asyncio.sleep(itl_ms / 1e3)
            delta = {"index": 0, "delta": {"reasoning_content": f" r{i}"}, "finish_reason": None}
            await resp.write(f"data: {json.dumps({'choices': [delta]})}\n\n".encode())
        if thinking and itl_ms:
            await asyncio.sleep(itl_ms / 1e3)
        truncate = truncate_every and n % truncate_every == 0
        for i in range(count):
            if truncate and i >= max(count // 2, 1):
                await resp.write_eof()  # a clean end mid-answer: no finish_reason, no usage, no [DONE]
                return resp
            if i and itl_ms:
                await asyncio.sleep(itl_ms / 1e3)
            choice = {"index": 0, "delta": {"content": f" t{i}"}} if chat else {"index": 0, "text": f" t{i}"}
            choice["finish_reason"] = "length" if i == count - 1 else None
            await resp.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
        usage = {"prompt_tokens": 8, "completion_tokens": count + thinking, "total_tokens": 8 + count + thinking}
        if thinking:
            usage["completion_tokens_details"] = {"reasoning_tokens": thinking}
        await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
        await resp.write_eof()
        return resp

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "stub", "owned_by": "infercost-stub"}]})

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(cmd: list[str], port: int, name: str, timeout_s: float = 30) -> Iterator[subprocess.Popen]:
    """Run a local server in its own process until the block ends: yields once `port` accepts connections, and
    stops the process (terminate, then kill) whatever happens."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.02)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def stub_server(ttft_ms: float = 0, itl_ms: float = 0, tokens: int = 8, fail_every: int = 0,
                stall_every: int = 0, truncate_every: int = 0, echo_key_every: int = 0,
                die_after: int = 0, rate_limit_rps: float = 0, retry_after_s: float = 1.0,
                reasoning_tokens: int = 0) -> Iterator[str]:
    """Start the stub in its own process (so it never shares an event loop or a GIL with the load generator) and
    yield its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "infercost.loadgen.stub_server", "--port", str(port), "--ttft-ms", str(ttft_ms),
           "--itl-ms", str(itl_ms), "--tokens", str(tokens), "--fail-every", str(fail_every),
           "--stall-every", str(stall_every), "--truncate-every", str(truncate_every),
           "--echo-key-every", str(echo_key_every), "--die-after", str(die_after),
           "--rate-limit-rps", str(rate_limit_rps), "--retry-after-s", str(retry_after_s),
           "--reasoning-tokens", str(reasoning_tokens)]
    with server_process(cmd, port, "stub server"):
        yield f"http://127.0.0.1:{port}/v1"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--ttft-ms", type=float, default=0)
    p.add_argument("--itl-ms", type=float, default=0)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--stall-every", type=int, default=0)
    p.add_argument("--truncate-every", type=int, default=0)
    p.add_argument("--echo-key-every", type=int, default=0)
    p.add_argument("--die-after", type=int, default=0)
    p.add_argument("--rate-limit-rps", type=float, default=0)
    p.add_argument("--retry-after-s", type=float, default=1.0)
    p.add_argument("--reasoning-tokens", type=int, default=0)
    a = p.parse_args()
    web.run_app(make_app(a.ttft_ms, a.itl_ms, a.tokens, a.fail_every, a.stall_every, a.truncate_every,
                         a.echo_key_every, a.die_after, a.rate_limit_rps, a.retry_after_s, a.reasoning_tokens),
                host="127.0.0.1",
                port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
