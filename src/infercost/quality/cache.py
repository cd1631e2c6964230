"""Answers cached by what determines them — model, quantisation, dtype, engine, sampling and the prompt set — and not
by batch size, rate or prefix caching, so a search generates them once per key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infercost.provenance import spec_hash

if TYPE_CHECKING:
    from infercost.spec.deployment import Deployment

THIS_MACHINE = "this machine"

# Deployment fields that change the answers. Serving knobs (max_num_seqs, prefix caching, memory share, ...) do not.
ANSWER_FIELDS = ("engine", "model", "dtype", "quantization", "kv_cache_dtype", "base_url", "tokenizer")


def answer_key(deployment: Deployment, prompts: list[dict[str, Any]], max_tokens: int) -> tuple[str, dict[str, Any]]:
    d = deployment.model_dump(mode="json")
    ident = {
        "deployment": {k: d[k] for k in ANSWER_FIELDS if k in d},
        "sampling": {"temperature": 0.0, "max_tokens": max_tokens},
        "prompts": spec_hash({"prompts": prompts}),
    }
    return spec_hash(ident), ident


class AnswerCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _read(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def get(self, key: str) -> dict[str, str] | None:
        entry = self._read(key)
        return None if entry is None else entry["answers"]

    def source(self, key: str) -> str | None:
        """Where the cached answers were generated ("this machine" for entries written before sources were kept)."""
        entry = self._read(key)
        return None if entry is None else entry.get("source", THIS_MACHINE)

    def put(self, key: str, ident: dict[str, Any], answers: dict[str, str], source: str = THIS_MACHINE) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._path(key).with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "identity": ident, "source": source, "answers": answers}, indent=1),
                       encoding="utf-8")
        tmp.replace(self._path(key))
