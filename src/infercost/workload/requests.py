"""Turn a workload's prompt source into the concrete list of requests to replay."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from infercost.errors import InputError
from infercost.spec.workload import (
    MAX_SYNTHETIC_TOKENS,
    DatasetPrompts,
    InlinePrompts,
    SessionPrompts,
    JsonlPrompts,
    LengthDist,
    PromptItem,
    SyntheticPrompts,
    TracePrompts,
    Workload,
)
from infercost.workload.datasets import read_dataset
from infercost.workload.trace import Trace, read_trace


@dataclass(slots=True)
class Request:
    """One request to send. `messages` for chat APIs, `prompt` for completion APIs (exactly one is set)."""

    id: str
    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    ignore_eos: bool = False
    seed: int | None = None
    reference: str | None = None
    must_contain: list[str] | None = None
    prefix_group: int | None = None
    meta: dict = field(default_factory=dict)

    def text(self) -> str:
        if self.prompt is not None:
            return self.prompt
        return "\n".join(m["content"] for m in self.messages or [])


def _item_to_request(item: PromptItem, index: int, workload: Workload) -> Request:
    s = workload.sampling
    messages = [m.model_dump() for m in item.messages] if item.messages else None
    prompt = item.prompt
    if workload.api == "chat":
        if messages is None:
            messages = [{"role": "user", "content": prompt}]
            prompt = None
        if workload.system_prompt and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": workload.system_prompt})
    elif prompt is None:  # completion API with chat items: flatten the user turns
        prompt = "\n".join(m["content"] for m in messages or [])
        messages = None
    return Request(
        id=item.id or f"{workload.name}-{index:05d}",
        prompt=prompt,
        messages=messages,
        max_tokens=item.max_tokens or s.max_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        ignore_eos=s.ignore_eos,
        seed=s.seed,
        reference=item.reference,
        must_contain=item.must_contain,
    )


def _prompt_item(value: object, source: str, lineno: int) -> PromptItem:
    """One JSONL line as a PromptItem; a problem names the line and says what a line must hold."""
    from pydantic import ValidationError

    from infercost.spec.files import message_of, nearest
    from infercost.spec.loader import first_error

    expected = "expected a JSON object with 'prompt' (text) or 'messages' (chat)"
    if not isinstance(value, dict):
        raise InputError(f"{expected}, got {type(value).__name__ if value is not None else 'null'}", source=source,
                         field=f"line {lineno}")
    if "prompt" not in value and "messages" not in value:
        keys = [str(k) for k in value]
        guess = next((g for g in (nearest(k, ("prompt", "messages")) for k in keys) if g), None)
        found = f"; found {', '.join(repr(k)[:40] for k in keys[:6])}" if keys else "; found an empty object"
        hint = f" (did you mean '{guess}'?)" if guess else ""
        raise InputError(f"{expected}{hint}{found}", source=source, field=f"line {lineno}")
    try:
        return PromptItem.model_validate(value)
    except ValidationError as exc:
        err = first_error(exc, source, set(), PromptItem)
        where = f"line {lineno}" + ("" if err.field == "(top level)" else f": {err.field}")
        raise InputError(message_of(err), source=source, field=where) from None


def _read_jsonl(src: JsonlPrompts, workload: Workload) -> list[PromptItem]:
    """The prompts of a JSONL file, read through the input layer's limits (size, line length, UTF-8)."""
    from infercost.spec.files import MAX_PROMPTS, exists, read_jsonl

    path = workload.resolve(src.path)
    if not exists(path):
        raise InputError("file not found", source=str(path), field="prompts.path")
    items: list[PromptItem] = []
    lines = read_jsonl(path, field="prompts.path", bounded=src.limit is not None)
    try:
        for lineno, value in lines:
            if len(items) >= MAX_PROMPTS:
                raise InputError(f"more than {MAX_PROMPTS:,} prompts (set prompts.limit to use the first ones)",
                                 source=str(path), field=f"line {lineno}")
            items.append(_prompt_item(value, str(path), lineno))
            if src.limit and len(items) >= src.limit:
                break
    finally:
        lines.close()
    if not items:
        raise InputError("no prompts in file", source=str(path))
    return items


def draw_lengths(dist: LengthDist, n: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = dist.min or 1, dist.max or 1 << 20
    if dist.dist == "fixed":
        values = np.full(n, dist.mean)
    elif dist.dist == "uniform":
        values = rng.integers(dist.min, dist.max + 1, size=n)
    else:
        values = np.rint(rng.normal(dist.mean, dist.std, size=n))
    return np.clip(values, lo, hi).astype(int)


# Plain English words: prompts built from them tokenise predictably and read as text in logs.
_WORDS = (
    "the of and to in is was for on are with as his they be at one have this from or had by word but what some we "
    "can out other were all there when up use your how said an each she which do their time if will way about many "
    "then them write would like so these her long make thing see him two has look more day could go come did number "
    "sound no most people my over know water than call first who may down side been now find any new work part take "
    "get place made live where after back little only round man year came show every good me give our under name "
    "very through just form sentence great think say help low line differ turn cause much mean before move right boy "
    "old too same tell does set three want air well also play small end put home read hand port large spell add even "
    "land here must big high such follow act why ask men change went light kind off need house picture try us again "
    "animal point mother world near build self earth father head stand own page should country found answer school"
).split()


def synthetic_text(n_tokens: int, rng: np.random.Generator, count_tokens: Callable[[str], int] | None) -> str:
    """Random words totalling `n_tokens` tokens: exact when a tokenizer counter is given, else ~1 token per word."""
    words = list(rng.choice(_WORDS, size=max(n_tokens, 1)))
    text = " ".join(words)
    if count_tokens is None:
        return text
    # Each common word is one token with a leading space in BPE vocabularies; trim or pad to the exact count.
    while len(words) > 1 and count_tokens(text) > n_tokens:
        words.pop()
        text = " ".join(words)
    while count_tokens(text) < n_tokens:
        words.append(str(rng.choice(_WORDS)))
        text = " ".join(words)
    return text


def _with_text(req: Request, text: str, workload: Workload) -> Request:
    """A generated prompt as the workload's API sends it: one user message (chat) or the prompt text."""
    if workload.api == "chat":
        req.messages = [{"role": "user", "content": text}]
    else:
        req.prompt = text
    return req


def _synthetic(src: SyntheticPrompts, workload: Workload, count_tokens) -> list[Request]:
    rng = np.random.default_rng(workload.traffic.seed)
    n = src.count
    inputs = draw_lengths(src.input_tokens, n, rng)
    outputs = draw_lengths(src.output_tokens, n, rng)
    prefixes = [synthetic_text(src.shared_prefix_tokens, rng, count_tokens) for _ in range(src.prefix_groups)] \
        if src.shared_prefix_tokens else []
    groups = rng.integers(0, src.prefix_groups, size=n)
    s = workload.sampling
    out = []
    for i in range(n):
        body = synthetic_text(int(inputs[i]), rng, count_tokens)
        text = f"{prefixes[groups[i]]}\n{body}" if prefixes else body
        req = Request(
            id=f"{workload.name}-{i:05d}",
            max_tokens=int(outputs[i]),
            temperature=s.temperature,
            top_p=s.top_p,
            ignore_eos=True,  # synthetic output lengths are only honoured if generation runs to max_tokens
            seed=s.seed,
            prefix_group=int(groups[i]) if prefixes else None,
        )
        out.append(_with_text(req, text, workload))
    return out


def load_trace(workload: Workload) -> Trace:
    t = workload.traffic.trace
    return read_trace(t.model_copy(update={"path": str(workload.resolve(t.path))}))


def fit_tokens(words: list[str], n_tokens: int, count_tokens: Callable[[str], int] | None,
               rng: np.random.Generator) -> str:
    """`words` joined, its tail cut or extended until the tokenizer counts exactly `n_tokens` (the words before the
    tail are kept: a traced prefix block stays identical). Adjusts by the whole difference at a time, then word by
    word: a few tokenizer calls even for long prompts."""
    words = list(words[:max(n_tokens, 1)]) or [str(rng.choice(_WORDS))]
    if count_tokens is None:
        return " ".join(words)
    for _ in range(64):
        diff = count_tokens(" ".join(words)) - n_tokens
        if diff == 0:
            break
        if diff > 0:
            del words[max(1, len(words) - (diff if diff > 2 else 1)):]
        else:
            words.extend(str(w) for w in rng.choice(_WORDS, size=-diff if diff < -2 else 1))
    return " ".join(words)


def _traced(workload: Workload, count_tokens: Callable[[str], int] | None) -> list[Request]:
    """One request per traced row: exact input length (with a tokenizer), exact output length (ignore_eos), and the
    row's hash blocks as identical word blocks (the same id is the same text wherever it appears)."""
    trace = load_trace(workload)
    total = sum(trace.input_tokens)
    if total > MAX_SYNTHETIC_TOKENS:
        raise InputError(f"the window asks for {total:,} tokens of prompt text; the limit is {MAX_SYNTHETIC_TOKENS:,}: "
                         "choose a shorter traffic.trace.duration_s", source=workload.name, field="traffic.trace")
    spec, s = workload.traffic.trace, workload.sampling
    rng = np.random.default_rng(workload.traffic.seed)
    vocabulary = np.array(_WORDS)
    out = []
    for i, (offset, n_in, n_out) in enumerate(zip(trace.offsets_s, trace.input_tokens, trace.output_tokens)):
        hashes = trace.hash_ids[i] if trace.hash_ids else None
        if hashes:
            words = [str(w) for h in hashes for w in vocabulary[np.random.default_rng(
                [workload.traffic.seed, h & 0xFFFFFFFF, h >> 32 & 0xFFFFFFFF]).integers(
                0, len(vocabulary), size=spec.block_tokens)]]
        else:
            words = [str(w) for w in rng.choice(vocabulary, size=n_in)]
        text = fit_tokens(words, n_in, count_tokens, rng)
        req = Request(id=f"{workload.name}-{i:06d}", max_tokens=n_out, temperature=s.temperature, top_p=s.top_p,
                      ignore_eos=True, seed=s.seed,
                      meta={"offset_s": float(offset), "traced_input_tokens": n_in,
                            **({"trace_session": trace.sessions[i]} if trace.sessions else {})})
        out.append(_with_text(req, text, workload))
    return out


def build_requests(workload: Workload, count_tokens: Callable[[str], int] | None = None) -> list[Request]:
    """The workload's prompts as requests, in order. A traced workload's requests carry their send offsets
    (meta["offset_s"])."""
    src = workload.prompts
    if isinstance(src, TracePrompts):
        return _traced(workload, count_tokens)
    if isinstance(src, SessionPrompts):
        from infercost.workload.sessions import build_session_requests

        return build_session_requests(workload, count_tokens)
    if isinstance(src, SyntheticPrompts):
        return _synthetic(src, workload, count_tokens)
    if isinstance(src, InlinePrompts):
        items = [PromptItem(prompt=i) if isinstance(i, str) else i for i in src.items]
    elif isinstance(src, DatasetPrompts):
        items, _ = read_dataset(src, workload.resolve("."))
    else:
        items = _read_jsonl(src, workload)
    return [_item_to_request(item, i, workload) for i, item in enumerate(items)]
