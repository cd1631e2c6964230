"""Prompts from datasets on local disk: ShareGPT JSON files and Hugging Face datasets (saved with save_to_disk,
local data files, or the local cache; HF_DATASETS_OFFLINE is set, so nothing is downloaded). Each row becomes a
PromptItem; rows without a usable prompt are skipped and counted; a sample is drawn with a seed after the length
filters, so the same file and seed give the same prompts."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from infercost.errors import InputError
from infercost.spec.files import decode_utf8, exists
from infercost.spec.workload import DatasetPrompts, PromptItem

MAX_DATASET_BYTES = 1 << 30  # ShareGPT_V3 (the file vLLM's benchmark reads) is about 640 MiB


def read_json_file(path: Path, what: str = "dataset file") -> str:
    """A JSON dataset file as text, refused over MAX_DATASET_BYTES. Read at its own size: a bounded read(n) would
    reserve n bytes up front, hundreds of MiB for a file of a few KiB."""
    try:
        size = path.stat().st_size
        if size > MAX_DATASET_BYTES:
            raise InputError(f"{what} of {size / 2**20:,.0f} MiB is over the {MAX_DATASET_BYTES >> 20:,} MiB limit",
                             source=str(path), field="prompts.path")
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the {what} ({exc.strerror})", source=str(path), field="prompts.path") from None
    if len(raw) > MAX_DATASET_BYTES:
        raise InputError(f"{what} is over the {MAX_DATASET_BYTES >> 20:,} MiB limit", source=str(path),
                         field="prompts.path")
    return decode_utf8(raw, str(path))


_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
          "bing": "assistant", "bard": "assistant", "system": "system"}


def estimated_tokens(text: str) -> int:
    """About 4 characters a token: the length filters run before any tokenizer is loaded."""
    return math.ceil(len(text) / 4)


def sharegpt_turns(row: Any) -> list[dict[str, str]] | None:
    """A ShareGPT row's conversation as chat messages (None when it has none)."""
    turns = row.get("conversations") or row.get("conversation") if isinstance(row, dict) else None
    if not isinstance(turns, list):
        return None
    out = []
    for t in turns:
        if not isinstance(t, dict):
            return None
        role = _ROLES.get(str(t.get("from", t.get("role", ""))).lower())
        text = t.get("value", t.get("content"))
        if role is None or not isinstance(text, str):
            return None
        out.append({"role": role, "content": text})
    return out


def _sharegpt(src: DatasetPrompts, path: Path) -> Iterable[tuple[Any, dict]]:
    if not path.is_file():
        raise InputError("expected a ShareGPT JSON file, found a directory or device", source=str(path),
                         field="prompts.path")
    text = read_json_file(path)
    try:
        data = json.loads(text)
    except RecursionError:
        raise InputError("not valid JSON (nested too deeply)", source=str(path)) from None
    except json.JSONDecodeError as exc:
        if path.suffix == ".jsonl":  # ShareGPT-style rows one per line
            data = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        data.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise InputError(f"not valid JSON ({e.msg} at column {e.pos + 1})", source=str(path),
                                         field=f"line {n}") from None
                    except (ValueError, RecursionError):
                        raise InputError("not valid JSON (nested too deeply or a number too long)",
                                         source=str(path), field=f"line {n}") from None
        else:
            raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                             source=str(path)) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InputError(f"not valid JSON ({str(exc).split(':')[0]})", source=str(path)) from None
    if not isinstance(data, list):
        raise InputError("expected a JSON list of conversations ({\"conversations\": [{\"from\": \"human\", "
                         "\"value\": ...}, ...]})", source=str(path))
    for i, row in enumerate(data):
        turns = sharegpt_turns(row)
        if not turns:
            yield i, {}
            continue
        first = next((k for k, t in enumerate(turns) if t["role"] == "user"), None)
        if first is None:
            yield i, {}
            continue
        reply = next((t["content"] for t in turns[first + 1:] if t["role"] == "assistant"), None)
        system = [t for t in turns[:first] if t["role"] == "system"]
        yield i, {"id": str(row.get("id", i)) if isinstance(row, dict) else str(i),
                  "messages": [*system, turns[first]], "reference": reply}


def _hf(src: DatasetPrompts, base: Path) -> Iterable[tuple[Any, dict]]:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise InputError("Hugging Face datasets are read with the `datasets` package: pip install "
                         "'infercost[datasets]'", field="prompts.format") from None
    local = base / src.path
    where = str(local) if exists(local) else src.path
    try:
        if local.is_dir() and ((local / "state.json").is_file() or (local / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(str(local))
            table = loaded[src.split] if isinstance(loaded, datasets.DatasetDict) else loaded
        elif local.is_file():
            kind = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}.get(local.suffix)
            if kind is None:
                raise InputError("expected a .json, .jsonl, .csv or .parquet data file, or a saved dataset "
                                 "directory", source=where, field="prompts.path")
            table = datasets.load_dataset(kind, data_files=str(local), split=src.split)
        else:
            table = datasets.load_dataset(where, src.name, split=src.split)
    except InputError:
        raise
    except KeyError:
        raise InputError(f"no split {src.split!r}", source=where, field="prompts.split") from None
    except Exception as exc:  # missing from the cache (offline), unreadable, a bad configuration
        raise InputError(" ".join(f"cannot load the dataset ({type(exc).__name__}: {exc})".split())[:300],
                         source=where, field="prompts.path") from None
    f = src.fields
    wanted = [c for c in (f.prompt, f.messages, f.reference, f.id) if c]
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise InputError(f"no field {missing[0]!r} (the dataset has {', '.join(table.column_names[:12])})",
                         source=where, field="prompts.fields")
    for i, row in enumerate(table):
        item: dict[str, Any] = {"id": str(row[f.id]) if f.id else str(i)}
        if f.prompt:
            item["prompt"] = row[f.prompt]
        else:
            turns = row[f.messages]
            item["messages"] = sharegpt_turns({"conversations": turns}) if isinstance(turns, list) else None
        if f.reference:
            item["reference"] = row[f.reference]
        yield i, item


def read_dataset(src: DatasetPrompts, base: Path) -> tuple[list[PromptItem], dict[str, Any]]:
    """The prompts, and what was done to get them (rows read, skipped, filtered, sampled) for the manifest."""
    if src.format == "sharegpt":
        path = base / src.path
        if not exists(path):
            raise InputError("file not found", source=str(path), field="prompts.path")
        rows = _sharegpt(src, path)
    else:
        rows = _hf(src, base)
    items, read, skipped, filtered = [], 0, 0, 0
    for _, item in rows:
        read += 1
        text = item.get("prompt")
        messages = item.get("messages")
        if not (isinstance(text, str) and text.strip()) and not messages:
            skipped += 1
            continue
        if not isinstance(item.get("reference"), (str, type(None))):
            item["reference"] = str(item["reference"])
        length = estimated_tokens(text if text else "\n".join(m["content"] for m in messages))
        if (src.min_input_tokens and length < src.min_input_tokens) or \
                (src.max_input_tokens and length > src.max_input_tokens):
            filtered += 1
            continue
        item = {k: v for k, v in item.items() if v is not None}
        if src.output_tokens == "reference":
            if not item.get("reference"):
                filtered += 1
                continue
            item["max_tokens"] = max(1, estimated_tokens(item["reference"]))
        items.append(PromptItem.model_validate(item))
    if not items:
        raise InputError(f"no usable prompts ({read} rows read, {skipped} without a prompt, {filtered} outside the "
                         "length filters)", source=src.path, field="prompts")
    if src.sample and src.sample < len(items):
        picks = np.sort(np.random.default_rng(src.seed).choice(len(items), src.sample, replace=False))
        items = [items[i] for i in picks]
    return items, {"rows": read, "without_prompt": skipped, "filtered": filtered, "prompts": len(items)}
