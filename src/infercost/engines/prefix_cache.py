"""Automatic prefix caching for the transformers engine, after vLLM's: prompts are cut into blocks of BLOCK tokens,
each full block is named by a chained hash of every token up to its end, and the KV tensors of a prompt's full
blocks are kept. A later prompt that starts with the same blocks reuses their KV and is prefilled from the first
block it does not share. Entries are evicted least-recently-used beyond a byte budget.

Only full-attention layers can be reused this way; a model with sliding-window layers keeps its own cache and the
engine says prefix caching is unavailable for it."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

BLOCK = 16  # tokens per block, as vLLM's default block size


@dataclass
class _Entry:
    layers: list[tuple[Any, Any]]  # per layer (keys, values), each [kv_heads, tokens, head_dim]
    tokens: int
    nbytes: int
    hashes: list[int] = field(default_factory=list)


def block_hashes(ids: list[int]) -> list[int]:
    """Hash of the prefix ending at each full block: equal hashes mean equal prefixes (up to hash collisions of
    Python's 64-bit tuple hash, which the lookup guards against by comparing tokens)."""
    out, h = [], 0
    for end in range(BLOCK, len(ids) + 1, BLOCK):
        h = hash((h, tuple(ids[end - BLOCK:end])))
        out.append(h)
    return out


class PrefixKVCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._index: dict[int, tuple[int, int, tuple[int, ...]]] = {}  # block hash -> (entry id, tokens, last block)
        self._next_id = 0
        self.queried_tokens = 0
        self.hit_tokens = 0

    def lookup(self, ids: list[int]) -> tuple[list[tuple[Any, Any]], int] | None:
        """The longest cached prefix of `ids` that leaves at least one token to compute (its logits start the
        answer), as per-layer (keys, values) sliced to that prefix, and its length."""
        self.queried_tokens += len(ids)
        hashes = block_hashes(ids[:-1])
        for n in range(len(hashes), 0, -1):
            found = self._index.get(hashes[n - 1])
            if found is None:
                continue
            entry_id, tokens, last_block = found
            entry = self._entries.get(entry_id)
            if entry is None or tuple(ids[tokens - BLOCK:tokens]) != last_block:
                continue
            self._entries.move_to_end(entry_id)
            self.hit_tokens += tokens
            return [(k[:, :tokens], v[:, :tokens]) for k, v in entry.layers], tokens
        return None

    def insert(self, ids: list[int], layers: list[tuple[Any, Any]]) -> None:
        """Keep the KV of `ids`' full blocks. `layers` hold the KV of the whole prompt, one (keys, values) per layer,
        each [kv_heads, len(ids), head_dim]."""
        hashes = block_hashes(ids)
        if not hashes or hashes[-1] in self._index and self._index[hashes[-1]][0] in self._entries:
            return
        tokens = len(hashes) * BLOCK
        kept = [(k[:, :tokens].clone(), v[:, :tokens].clone()) for k, v in layers]
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kept)
        if nbytes > self.max_bytes:
            return
        while self._entries and self.bytes + nbytes > self.max_bytes:
            self._evict()
        entry_id, self._next_id = self._next_id, self._next_id + 1
        self._entries[entry_id] = _Entry(kept, tokens, nbytes, hashes)
        self.bytes += nbytes
        for i, h in enumerate(hashes):
            end = (i + 1) * BLOCK
            self._index[h] = (entry_id, end, tuple(ids[end - BLOCK:end]))

    def _evict(self) -> None:
        entry_id, entry = self._entries.popitem(last=False)
        self.bytes -= entry.nbytes
        for h in entry.hashes:
            if self._index.get(h, (None,))[0] == entry_id:
                del self._index[h]

    def stats(self) -> dict[str, Any]:
        return {
            "prefix_cache_block_tokens": BLOCK,
            "prefix_cache_queried_tokens": self.queried_tokens,
            "prefix_cache_hit_tokens": self.hit_tokens,
            "prefix_cache_hit_rate": round(self.hit_tokens / self.queried_tokens, 4) if self.queried_tokens else None,
            "prefix_cache_entries": len(self._entries),
            "prefix_cache_bytes": self.bytes,
        }
