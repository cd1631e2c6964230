"""Prompt sources → requests: inline, JSONL, synthetic (exact token lengths with a real tokenizer, shared prefixes)."""

from collections import Counter

import numpy as np
import pytest
from transformers import AutoTokenizer

from conftest import WORKLOADS
from infercost.spec import Workload, load_workload
from infercost.spec.workload import LengthDist
from infercost.workload import build_requests
from infercost.workload.requests import draw_lengths


def workload(**overrides):
    base = {"name": "w", "prompts": {"source": "inline", "items": ["hello"]},
            "traffic": {"rate": 1, "num_requests": 1}}
    base.update(overrides)
    return Workload.model_validate(base)


def test_shipped_workloads_load():
    chat = build_requests(load_workload(WORKLOADS / "chat-support.yaml"))
    assert len(chat) == 50 and chat[0].id == "cs-001" and chat[0].messages[0]["content"].startswith("What is")
    assert all(r.reference for r in chat) and chat[0].max_tokens == 48
    summaries = build_requests(load_workload(WORKLOADS / "batch-summarisation.yaml"))
    assert len(summaries) == 12 and all(r.messages and r.reference for r in summaries)
    assert len(build_requests(load_workload(WORKLOADS / "rag-shared-prefix.yaml"))) == 40


def test_chat_and_completion_conversion_and_system_prompt():
    chat = build_requests(workload(api="chat", system_prompt="Be brief.", prompts={
        "source": "inline", "items": ["hi", {"messages": [{"role": "user", "content": "yo"}], "reference": "r"}]}))
    assert chat[0].messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert chat[1].messages[0]["role"] == "system" and chat[1].reference == "r"
    completion = build_requests(workload(api="completion", prompts={
        "source": "inline", "items": [{"messages": [{"role": "user", "content": "yo"}]}]}))
    assert completion[0].prompt == "yo" and completion[0].messages is None


def test_length_distributions_respect_bounds():
    rng = np.random.default_rng(0)
    normal = draw_lengths(LengthDist(dist="normal", mean=100, std=50, min=60, max=140), 5000, rng)
    assert normal.min() >= 60 and normal.max() <= 140 and abs(normal.mean() - 100) < 3
    uniform = draw_lengths(LengthDist(dist="uniform", min=5, max=9), 5000, rng)
    assert set(uniform) == {5, 6, 7, 8, 9}
    assert set(draw_lengths(LengthDist(mean=7), 10, rng)) == {7}


def test_synthetic_prompts_have_exact_token_lengths_and_shared_prefixes(smollm2_dir):
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    w = workload(api="completion", prompts={
        "source": "synthetic", "count": 30, "input_tokens": {"dist": "uniform", "min": 20, "max": 40},
        "output_tokens": {"dist": "fixed", "mean": 8}, "shared_prefix_tokens": 64, "prefix_groups": 3})
    requests = build_requests(w, count)
    groups = Counter(r.prefix_group for r in requests)
    assert set(groups) == {0, 1, 2}
    prefixes = {}
    for r in requests:
        prefix, body = r.prompt.split("\n", 1)
        assert count(prefix) == 64
        assert 20 <= count(body) <= 40
        assert prefixes.setdefault(r.prefix_group, prefix) == prefix  # same group, same prefix
        assert r.max_tokens == 8 and r.ignore_eos
    assert len(set(prefixes.values())) == 3
    assert [r.prompt for r in build_requests(w, count)] == [r.prompt for r in requests]  # seeded


def test_inline_item_needs_prompt_or_messages():
    with pytest.raises(ValueError):
        workload(prompts={"source": "inline", "items": [{"reference": "x"}]})
