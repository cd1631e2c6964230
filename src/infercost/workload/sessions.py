"""Multi-turn sessions as requests: one Request per turn, carrying its session, turn index and the think time after
it (meta). The load generator sends a session's turns in order, each with the history so far (the answers really
given), so a turn's prompt grows as in a conversation and a prefix cache sees the reuse it would in production."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from infercost.errors import InputError
from infercost.spec.workload import SessionPrompts, Workload
from infercost.workload.datasets import estimated_tokens, sharegpt_turns


def think_times(src: SessionPrompts, n: int, rng: np.random.Generator) -> list[float]:
    t = src.think_time
    if t.dist == "fixed" or t.mean_s == 0:
        return [t.mean_s] * n
    return [float(x) for x in rng.exponential(t.mean_s, size=n)]


def _from_file(src: SessionPrompts, path: Path) -> list[list[tuple[str, int | None]]]:
    """Each conversation's user turns, with the length of the reply after each (for output_tokens: reference)."""
    import json

    from infercost.spec.files import exists
    from infercost.workload.datasets import read_json_file

    if not exists(path):
        raise InputError("file not found", source=str(path), field="prompts.path")
    if not path.is_file():
        raise InputError("expected a conversations file, found a directory or device", source=str(path),
                         field="prompts.path")
    text = read_json_file(path, "conversations file")
    try:
        rows = json.loads(text) if path.suffix != ".jsonl" else [json.loads(x) for x in text.splitlines() if x.strip()]
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                         source=str(path)) from None
    except (ValueError, RecursionError):  # nested too deeply, or an integer of thousands of digits
        raise InputError("not valid JSON (nested too deeply or a number too long)", source=str(path)) from None
    if not isinstance(rows, list):
        raise InputError("expected a list of conversations ({\"conversations\": [{\"from\": \"human\", \"value\": "
                         "...}, ...]})", source=str(path))
    out = []
    for row in rows:
        turns = sharegpt_turns(row) or []
        user = []
        for k, t in enumerate(turns):
            if t["role"] == "user" and t["content"].strip():
                reply = next((x["content"] for x in turns[k + 1:k + 2] if x["role"] == "assistant"), None)
                user.append((t["content"], estimated_tokens(reply) if reply else None))
        if user:
            out.append(user[:src.max_turns])
    if not out:
        raise InputError("no conversation with a user turn", source=str(path), field="prompts.path")
    return out


def build_session_requests(workload: Workload, count_tokens: Callable[[str], int] | None = None):
    """The sessions' turns as requests, session by session in order."""
    from infercost.workload.requests import Request, draw_lengths, synthetic_text

    src: SessionPrompts = workload.prompts
    s = workload.sampling
    rng = np.random.default_rng(workload.traffic.seed)
    if src.path is not None:
        conversations = _from_file(src, workload.resolve(src.path))
        sessions = [[(text, (n if src.output_tokens == "reference" and n else s.max_tokens), False)
                     for text, n in conv] for conv in conversations]
    else:
        sy = src.synthetic
        turns = np.minimum(draw_lengths(sy.turns, sy.sessions, rng), src.max_turns)
        sessions = []
        for n_turns in turns:
            ins = draw_lengths(sy.input_tokens, int(n_turns), rng)
            outs = draw_lengths(sy.output_tokens, int(n_turns), rng)
            sessions.append([(synthetic_text(int(i), rng, count_tokens), int(o), True) for i, o in zip(ins, outs)])
    out = []
    for k, turns in enumerate(sessions):
        thinks = think_times(src, len(turns), rng)
        for j, (text, max_tokens, synthetic) in enumerate(turns):
            messages = [{"role": "user", "content": text}]
            if workload.system_prompt:
                messages.insert(0, {"role": "system", "content": workload.system_prompt})
            out.append(Request(id=f"{workload.name}-s{k:05d}-t{j:02d}", messages=messages, max_tokens=max_tokens,
                               temperature=s.temperature, top_p=s.top_p, ignore_eos=synthetic or s.ignore_eos,
                               seed=s.seed, meta={"session": k, "turn": j, "think_s": thinks[j]}))
    return out
