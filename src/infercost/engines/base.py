"""The one small interface every engine implements. The load generator timestamps what an engine yields, so an engine
only has to stream: text chunks as they come, then the token counts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, ClassVar, Generic, Literal, Sequence, TypeVar

from infercost.workload.requests import Request

if TYPE_CHECKING:
    from infercost.spec.deployment import OpenAIDeployment, TransformersDeployment, VllmDeployment

# The deployment class an engine runs: each engine reads only the options its own class validates.
D = TypeVar("D", bound="VllmDeployment | TransformersDeployment | OpenAIDeployment")


@dataclass(slots=True)
class Chunk:
    """Newly generated output: `tokens` is how many tokens it holds where the engine knows (else None).
    `reasoning` marks a reasoning model's thinking (streamed apart from the answer by OpenAI-compatible servers)."""

    text: str
    tokens: int | None = None
    reasoning: bool = False


@dataclass(slots=True)
class Usage:
    """Token counts for a finished request and where they came from (engine / server usage / tokenizer)."""

    input_tokens: int | None
    output_tokens: int | None
    source: Literal["engine", "usage", "tokenizer", "chunks"]
    finish_reason: str | None = None
    reasoning_tokens: int | None = None  # part of output_tokens (and priced as output), where the server says
    cached_input_tokens: int | None = None  # part of input_tokens served from the server's prefix cache


class RequestFailed(Exception):
    """A request the engine could not complete; recorded per request with its HTTP status if any, and its kind:
    `http` (an error status), `server` (an error event in the stream), `connect` (the server could not be reached),
    `disconnected`, `timeout`, `truncated` (the stream ended without a finish_reason), `malformed`."""

    def __init__(self, message: str, status: int | None = None, kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.kind = kind or ("http" if status else None)


class Engine(ABC, Generic[D]):
    """Lifecycle: `await start()` (timed separately from the run), many concurrent `generate()`, `await stop()`."""

    name: ClassVar[str]

    def __init__(self, deployment: D):
        self.deployment = deployment
        self.log_path: Path | None = None  # where the engine's own output goes, when it has any

    memory_plan: Any = None  # the engines.memory.MemoryPlan its start was sized by, where it sizes memory

    def plan_memory(self, requests: Sequence[Request] = ()) -> Any:
        """Size the engine's memory for `requests` and check it fits before `start()`; raises
        engines.memory.InsufficientMemory when it cannot. Engines whose memory is not theirs to size (a remote
        server) have nothing to plan."""
        return None

    def longest_sequence(self, requests: Sequence[Request]) -> int | None:
        """The longest prompt (as this engine tokenises it) + max_tokens: what one sequence can take of the cache."""
        return max((len(self._prompt_ids(r)) + r.max_tokens for r in requests), default=None)

    def _prompt_ids(self, request: Request) -> list[int]:
        raise NotImplementedError(f"engine '{self.name}' does not tokenise prompts itself")

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    def generate(self, request: Request) -> AsyncIterator[Chunk | Usage]:
        """Yield Chunks as output arrives, then exactly one Usage. Raise RequestFailed on a failed request."""

    @abstractmethod
    async def stop(self) -> None: ...

    _tokenizer: Any = None  # an HF tokenizer where the engine has one

    def count_tokens(self, text: str) -> int | None:
        """Tokens in `text` by this deployment's tokenizer, where one is available (for synthetic prompts)."""
        if self._tokenizer is None:
            return None
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def describe(self) -> dict[str, Any]:
        """Engine name, versions and anything else that identifies what was measured, for the manifest."""
        return {"engine": self.name}

    def answer_source(self) -> str:
        """Where this engine's answers are generated, kept with every quality figure made from them."""
        return "this machine"

    def secrets(self) -> tuple[str, ...]:
        """Credentials this engine sends (an API key, URL credentials): removed from anything recorded, such as an
        error body that echoes them."""
        return ()
