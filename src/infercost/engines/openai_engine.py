"""Any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, hosted APIs) over streaming HTTP. Token counts come
from the server's `usage` (requested with stream_options), else the deployment's tokenizer, else the chunk count."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import time
from typing import Any, AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from infercost.engines.base import Chunk, Engine, RequestFailed, Usage
from infercost.errors import InputError
from infercost.redact import redact_text, redact_url, url_secrets
from infercost.spec.deployment import OpenAIDeployment
from infercost.workload.requests import Request

TRUNCATED = "stream ended without finish_reason"
_DONE = object()
RATE_WINDOW_S = 60.0  # vendors state limits per minute: the send rate a 429 met is measured over the last minute
MAX_BACKOFF_S, MAX_RETRY_AFTER_S = 30.0, 60.0


class RateLimits:
    """What this engine met of the server's rate limit: how many 429s, how many resends, how many requests gave up,
    and the rate the server was accepting requests at when it refused one. That rate is the limit met: requests
    accepted (answered other than 429) in the last minute over the span they cover (at least a second), the
    per-minute view vendors publish their limits in. Accepted, not sent: counting every attempt would count the
    refused ones and their resends too, and overstate the limit (20 sent at once to a 5 req/s limit would read 20)."""

    def __init__(self) -> None:
        self.accepted: collections.deque[float] = collections.deque()
        self.responses_429 = self.retries = self.gave_up = 0
        self.rates: list[float] = []
        self.retry_after_s: float | None = None

    def answered(self, status: int) -> None:
        if status == 429:
            return
        now = time.monotonic()
        self.accepted.append(now)
        while now - self.accepted[0] > RATE_WINDOW_S:
            self.accepted.popleft()

    def limited(self, retry_after: str | None) -> float | None:
        """Count a 429 and the rate it met; returns its Retry-After in seconds (None if absent or an HTTP date,
        where the backoff decides). The value goes back to the caller: the engine-wide last one may already be
        another concurrent request's by the time this one waits."""
        now = time.monotonic()
        self.responses_429 += 1
        recent = [t for t in self.accepted if now - t <= RATE_WINDOW_S]
        self.rates.append(len(recent) / max(1.0, now - recent[0]) if recent else 0.0)
        try:
            seconds = float(retry_after) if retry_after is not None else None
        except ValueError:
            seconds = None
        if seconds is not None:
            self.retry_after_s = seconds
        return seconds

    @staticmethod
    def wait_s(attempt: int, backoff_s: float, retry_after_s: float | None) -> float:
        """The server's Retry-After (at most 60 s) when it gave one, else backoff_s doubling per attempt with
        +-50% jitter (so resends of a burst do not arrive together again), at most 30 s."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S)
        return min(backoff_s * 2 ** attempt * random.uniform(0.5, 1.5), MAX_BACKOFF_S)

    def record(self) -> dict[str, Any] | None:
        if not self.responses_429:
            return None
        return {"responses_429": self.responses_429, "retries": self.retries, "gave_up": self.gave_up,
                "accepted_rps_at_first_429": round(self.rates[0], 4),
                "min_accepted_rps_at_429": round(min(self.rates), 4),
                "retry_after_s": self.retry_after_s}


async def _sse_lines(content: aiohttp.StreamReader) -> AsyncIterator[list[bytes]]:
    """The stream's lines, in batches: whatever has arrived is taken at once and split here (one await per network
    read rather than per line; every event in a read carries that read's arrival time). A last line without its
    newline comes at the end."""
    rest = b""
    async for data in content.iter_any():
        *lines, rest = (rest + data).split(b"\n")
        if lines:
            yield lines
    if rest:
        yield [rest]


class OpenAIEngine(Engine[OpenAIDeployment]):
    name = "openai"

    def __init__(self, deployment: OpenAIDeployment):
        super().__init__(deployment)
        self._session: aiohttp.ClientSession | None = None
        parts = urlsplit(deployment.base_url)
        self._base_parts = parts._replace(path=parts.path.rstrip("/"), fragment="")
        self._tokenizer = None
        self._server: dict[str, Any] = {}
        self.limits = RateLimits()

    def rate_limit(self) -> dict[str, Any] | None:
        """The rate limit this engine met (see RateLimits), or None if the server never answered 429."""
        return self.limits.record()

    @contextlib.asynccontextmanager
    async def _post(self, url: str, body: dict[str, Any]):
        """POST, resending a 429 after Retry-After or a jittered backoff, up to max_retries_429 times. The wait
        counts in the request's latency: it is what a user of that vendor waits. Yields the last response."""
        attempt = 0
        while True:
            resp = await self._session.post(url, json=body)
            self.limits.answered(resp.status)
            if resp.status != 429 or attempt >= self.deployment.max_retries_429:
                try:
                    yield resp, attempt
                finally:
                    resp.release()
                return
            retry_after = self.limits.limited(resp.headers.get("Retry-After"))
            await resp.read()
            resp.release()
            self.limits.retries += 1
            await asyncio.sleep(self.limits.wait_s(attempt, self.deployment.retry_backoff_s, retry_after))
            attempt += 1

    def _headers(self) -> dict[str, str]:
        headers = dict(self.deployment.headers)
        env = self.deployment.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise InputError(f"environment variable {env} is not set (it should hold the API key)",
                                 field="api_key_env")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _url(self, path: str) -> str:
        """`base_url` + `/path`, keeping its query string (a key some servers take as ?api-key=) after the path."""
        p = self._base_parts
        return urlunsplit(p._replace(path=f"{p.path}/{path}"))

    def answer_source(self) -> str:
        return f"endpoint {redact_url(self.deployment.base_url)} (served model {self.deployment.model})"

    def secrets(self) -> tuple[str, ...]:
        found = list(url_secrets(self.deployment.base_url))
        key = os.environ.get(self.deployment.api_key_env) if self.deployment.api_key_env else None
        if key:
            found.append(key)
        return tuple(found)

    def _fail(self, message: str, status: int | None = None, kind: str | None = None) -> RequestFailed:
        """A failed request whose message is safe to record: an error body that echoes the key (some servers do on
        401) or a URL with credentials loses them here."""
        return RequestFailed(redact_text(message, self.secrets()), status=status, kind=kind)

    async def start(self) -> None:
        d = self.deployment
        # aiohttp rather than httpx: on the same 2-core host it pushed 13x the requests per second through a
        # streaming stub (3,900 vs 290 req/s), so the client is not what limits a measurement.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, d.request_timeout_s),
                                        sock_read=d.request_timeout_s)
        self._session = aiohttp.ClientSession(
            headers=self._headers(), timeout=timeout,
            connector=aiohttp.TCPConnector(limit=d.max_connections, ttl_dns_cache=300),
        )
        if d.tokenizer:
            from transformers import AutoTokenizer

            from infercost.models import resolve_model

            self._tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(d.tokenizer)))
        try:  # best effort: what the server says about itself, for the manifest
            async with self._session.get(self._url("models"), timeout=aiohttp.ClientTimeout(total=10)) as resp:
                models = (await resp.json()).get("data", []) if resp.status == 200 else []
            if models:
                match = next((m for m in models if m.get("id") == d.model), None)
                if match:
                    self._server["model"] = {k: match[k] for k in ("id", "owned_by", "max_model_len", "root")
                                             if k in match}
        except (aiohttp.ClientError, TimeoutError, ValueError):
            pass

    def _body(self, request: Request, chat: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.deployment.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if chat:
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        if request.ignore_eos:  # vLLM / SGLang extension; hosted APIs would reject the unknown field otherwise
            body["ignore_eos"] = True
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    def _event(self, raw: bytes, status: int) -> dict[str, Any] | object | None:
        """One SSE line: its JSON event, _DONE for `data: [DONE]`, None for anything that is not a data line. An
        event carrying an error is a failed request."""
        line = raw.strip()
        if not line.startswith(b"data:"):
            return None
        data = line[5:].strip()
        if data == b"[DONE]":
            return _DONE
        event = json.loads(data.decode("utf-8", "replace"))
        if "error" in event:
            err = event["error"]
            raise self._fail(f"server error: {err.get('message', err) if isinstance(err, dict) else err}",
                             status=status, kind="server")
        return event

    async def generate(self, request: Request) -> AsyncIterator[Chunk | Usage]:
        chat = request.messages is not None
        path = "chat/completions" if chat else "completions"
        usage: dict[str, Any] | None = None
        finish, text, chunks, done = None, [], 0, False
        thinking: list[str] = []
        try:
            async with self._post(self._url(path), self._body(request, chat)) as (resp, retries):
                if resp.status >= 400:
                    body = (await resp.read()).decode("utf-8", "replace")[:300]
                    if resp.status == 429:
                        self.limits.limited(resp.headers.get("Retry-After"))
                        self.limits.gave_up += 1
                        raise self._fail(f"HTTP 429 after {retries} retries: {body[:200]}", status=429,
                                         kind="rate_limited")
                    raise self._fail(f"HTTP {resp.status}: {body}", status=resp.status, kind="http")
                async with contextlib.aclosing(_sse_lines(resp.content)) as batches:
                    async for lines in batches:
                        for line in lines:
                            if (event := self._event(line, resp.status)) is None:
                                continue
                            if event is _DONE:
                                done = True
                                break
                            if event.get("usage"):
                                usage = event["usage"]
                            for choice in event.get("choices") or []:
                                delta = (choice.get("delta") or {}) if chat else {}
                                # a reasoning model's thinking: vLLM and DeepSeek send reasoning_content, others
                                # (OpenRouter, newer vLLM) reasoning
                                thought = delta.get("reasoning_content") or delta.get("reasoning")
                                if thought and isinstance(thought, str):
                                    chunks += 1
                                    thinking.append(thought)
                                    yield Chunk(thought, None, reasoning=True)
                                piece = delta.get("content") if chat else choice.get("text")
                                if piece:
                                    chunks += 1
                                    text.append(piece)
                                    yield Chunk(piece, None)
                                finish = choice.get("finish_reason") or finish
                        if done:
                            break
        except TimeoutError as exc:  # aiohttp's socket read/connect timeouts
            raise RequestFailed(f"timeout: {type(exc).__name__}", kind="timeout") from exc
        except aiohttp.ClientConnectorError as exc:  # refused, unreachable, DNS: the server is not there
            raise self._fail(f"{type(exc).__name__}: {exc}", kind="connect") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:  # killed mid-answer
            raise self._fail(f"{type(exc).__name__}: {exc}", kind="disconnected") from exc
        except aiohttp.ClientError as exc:
            raise self._fail(f"{type(exc).__name__}: {exc}", kind="client") from exc
        except json.JSONDecodeError as exc:
            raise RequestFailed(f"malformed stream event: {exc.msg}", kind="malformed") from exc
        if not done and finish is None:
            # The connection closed cleanly in the middle of an answer: a short answer is not a success.
            raise RequestFailed(TRUNCATED, kind="truncated")
        if usage and usage.get("completion_tokens") is not None:
            # completion_tokens includes reasoning tokens (OpenAI's definition): they are generated and billed alike
            reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            yield Usage(usage.get("prompt_tokens"), usage["completion_tokens"], "usage", finish,
                        reasoning if reasoning is not None or not thinking else self.count_tokens("".join(thinking)),
                        cached)
        elif self._tokenizer is not None:
            prompt = request.prompt if request.prompt is not None else request.text()
            thought = self.count_tokens("".join(thinking)) if thinking else None
            yield Usage(self.count_tokens(prompt), self.count_tokens("".join(text)) + (thought or 0), "tokenizer",
                        finish, thought)
        else:
            yield Usage(None, chunks, "chunks", finish, sum(1 for _ in thinking) if thinking else None)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "base_url": redact_url(self.deployment.base_url),
            "served_model": self.deployment.model,
            "aiohttp_version": aiohttp.__version__,
            "server": self._server,
            **({"rate_limited": self.rate_limit()} if self.rate_limit() else {}),
        }


ENGINE = OpenAIEngine
