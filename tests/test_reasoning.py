"""A reasoning model through an OpenAI-compatible server: its thinking streams as `reasoning_content` before the
answer. TTFT is its first thinking token, the time to its first answer token is reported apart, TPOT covers every
generated token, and reasoning tokens are counted apart (and priced as output). The server is the stub (a fake): no
reasoning model can run here, and the stub streams thinking at a known pace."""


import pytest

from infercost.loadgen.stub_server import stub_server
from infercost.metrics import summarize
from infercost.spec.workload import Workload

from conftest import replay as replay_stub


def replay(url: str, n: int = 4):
    w = Workload.model_validate({"name": "think", "api": "chat",
                                 "prompts": {"source": "inline", "items": [f"question {i}" for i in range(n)]},
                                 "sampling": {"max_tokens": 4},
                                 "traffic": {"arrival": "constant", "rate": 50, "num_requests": n}})

    return replay_stub(url, w)[1]


def test_thinking_is_timed_and_counted_apart_from_the_answer():
    # 100 ms to the first thinking token, then 20 thinking tokens and 4 answer tokens 10 ms apart
    with stub_server(ttft_ms=100, itl_ms=10, tokens=4, reasoning_tokens=20) as url:
        records = replay(url)
    for r in records:
        assert r.ok and r.reasoning_tokens == 20 and r.output_tokens == 24  # usage counts thinking as output
        ttft = r.first_token_s - r.sent_s
        answer = r.first_answer_s - r.sent_s
        assert 0.09 <= ttft < 0.25 and answer - ttft >= 0.19  # the answer starts after 20 more tokens
        assert r.output_text == " t0 t1 t2 t3"  # the thinking is timed, not kept as the answer
        assert len(r.token_times_s) == 24
    s = summarize(records)
    assert s.mean_reasoning_tokens == 20 and s.mean_output_tokens == 24
    ttft, answer = s.latency["ttft_ms"].stats["mean"], s.latency["answer_ttft_ms"].stats["mean"]
    assert answer > ttft + 190
    # TPOT over every generated token after the first: about the 10 ms gap, not (e2e - answer TTFT) / 3
    assert s.latency["tpot_ms"].stats["mean"] == pytest.approx(10, abs=6)


def test_a_model_that_does_not_reason_has_the_same_ttft_and_answer_ttft():
    with stub_server(ttft_ms=50, itl_ms=5, tokens=4) as url:
        records = replay(url)
    assert all(r.first_answer_s == r.first_token_s and r.reasoning_tokens is None for r in records)
    assert summarize(records).mean_reasoning_tokens is None
