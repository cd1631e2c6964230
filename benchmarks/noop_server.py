"""A no-op OpenAI-compatible server for measuring load generators: every POST gets the same canned streaming
completion (a few SSE chunks, usage, [DONE]) at once, so whatever limits the request rate is the client.

nginx serves it where the `nginx` binary is installed (Debian: `apt-get install nginx-light`): one worker, no
access log, keep-alive without a request limit. Elsewhere a raw asyncio TCP server (uvloop where importable) writes
the same bytes. Either runs in its own process, so it never shares an event loop or a GIL with the client.

Run: python benchmarks/noop_server.py --port 8001 [--python]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Iterator

from infercost.loadgen.stub_server import free_port, server_process

TOKENS = 4


def canned_body(tokens: int = TOKENS) -> bytes:
    """The SSE stream of a completion of `tokens` tokens, in the shape vLLM's OpenAI server sends."""
    lines = []
    for i in range(tokens):
        choice = {"index": 0, "text": f" t{i}", "finish_reason": "length" if i == tokens - 1 else None}
        lines.append(f"data: {json.dumps({'id': 'cmpl-noop', 'object': 'text_completion', 'choices': [choice]})}")
    usage = {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}
    lines.append(f"data: {json.dumps({'id': 'cmpl-noop', 'choices': [], 'usage': usage})}")
    lines.append("data: [DONE]")
    return ("\n\n".join(lines) + "\n\n").encode()


MODELS = json.dumps({"object": "list", "data": [{"id": "noop", "object": "model", "owned_by": "noop"}]}).encode()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.access(p, os.X_OK)), None)


def nginx_config(port: int, prefix: str, tokens: int) -> str:
    body = canned_body(tokens).decode()
    temp = "\n".join(f"    {k}_temp_path {prefix}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""worker_processes 1;
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log crit;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
{temp}
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /v1/models {{ default_type application/json; return 200 '{MODELS.decode()}'; }}
        location / {{ default_type text/event-stream; return 200 '{body}'; }}
    }}
}}
"""


class _Canned(asyncio.Protocol):
    """HTTP/1.1 keep-alive: for each request (headers, then Content-Length bytes of body) write the canned answer."""

    def __init__(self, sse: bytes, models: bytes):
        self.sse, self.models = sse, models
        self.buf = b""
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(buf) < total:
                break
            buf = buf[total:]
            self.transport.write(self.models if head.startswith(b"GET /v1/models") else self.sse)
        self.buf = buf


def _response(content_type: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: keep-alive\r\n\r\n").encode() + body


def serve_python(port: int, tokens: int) -> None:
    try:
        import uvloop  # optional: only a faster loop for the server, never used by the client under test

        uvloop.install()
    except ImportError:
        pass
    sse, models = _response("text/event-stream", canned_body(tokens)), _response("application/json", MODELS)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Canned(sse, models), "127.0.0.1", port, backlog=4096)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


@contextlib.contextmanager
def noop_server(tokens: int = TOKENS, prefer_nginx: bool = True, cpu: int | None = None, port: int | None = None) -> Iterator[dict]:
    """Start the no-op server in its own process, pinned to `cpu` where given; yields {"url", "kind"}."""
    port = port or free_port()
    nginx = nginx_binary() if prefer_nginx else None
    with tempfile.TemporaryDirectory(prefix="infercost-noop-") as prefix:
        if nginx:
            conf = os.path.join(prefix, "nginx.conf")
            with open(conf, "w") as f:
                f.write(nginx_config(port, prefix, tokens))
            cmd, kind = [nginx, "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", conf], "nginx"
        else:
            cmd, kind = [sys.executable, os.path.abspath(__file__), "--python", "--port", str(port),
                         "--tokens", str(tokens)], "python"
        with server_process(cmd, port, "no-op server", timeout_s=20) as proc:
            if cpu is not None and hasattr(os, "sched_setaffinity"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(proc.pid, {cpu})
            yield {"url": f"http://127.0.0.1:{port}/v1", "kind": kind}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--tokens", type=int, default=TOKENS)
    p.add_argument("--python", action="store_true", help="the asyncio server even where nginx is installed")
    a = p.parse_args()
    if a.python:
        serve_python(a.port, a.tokens)
        return
    with noop_server(a.tokens, prefer_nginx=True, port=a.port) as server:
        print(f"{server['kind']} no-op server at {server['url']}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
