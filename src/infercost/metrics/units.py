"""Each metric is a small unit with a name, a unit and the per-request inputs it reads. Definitions follow vLLM's
benchmarks so numbers compare: TTFT = first token − send; TPOT = (e2e − TTFT) / (output tokens − 1);
ITL = every gap between streamed chunks, pooled over requests; e2e = end of stream − send. A reasoning model's
thinking tokens are output tokens (they are generated and billed as such): TTFT is its first thinking token, and the
time to its first answer token is a metric of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from infercost.loadgen.records import RequestRecord


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    description: str
    values: Callable[[RequestRecord], list[float]]  # zero or more samples from one completed request


def _ttft(r: RequestRecord) -> list[float]:
    return [(r.first_token_s - r.sent_s) * 1e3] if r.first_token_s is not None else []


def _answer_ttft(r: RequestRecord) -> list[float]:
    return [(r.first_answer_s - r.sent_s) * 1e3] if r.first_answer_s is not None else []


def _e2e(r: RequestRecord) -> list[float]:
    return [(r.end_s - r.sent_s) * 1e3]


def _tpot(r: RequestRecord) -> list[float]:
    n = r.output_tokens
    if r.first_token_s is None or n is None or n < 2:
        return []
    return [((r.end_s - r.sent_s) - (r.first_token_s - r.sent_s)) * 1e3 / (n - 1)]


def _itl(r: RequestRecord) -> list[float]:
    t = r.token_times_s
    return [(b - a) * 1e3 for a, b in zip(t, t[1:])]


def _lag(r: RequestRecord) -> list[float]:
    lag = r.schedule_lag_s
    return [lag * 1e3] if lag is not None else []


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("ttft_ms", "ms", "time to first token: first streamed token − request sent (a reasoning model's "
               "first thinking token counts)", _ttft),
        Metric("answer_ttft_ms", "ms", "time to first answer token: first token of the answer − request sent (after "
               "a reasoning model's thinking; equal to TTFT for a model that does not reason)", _answer_ttft),
        Metric("tpot_ms", "ms", "time per output token after the first: (e2e − TTFT) / (output tokens − 1)", _tpot),
        Metric("itl_ms", "ms", "inter-token latency: each gap between streamed chunks, pooled", _itl),
        Metric("e2e_ms", "ms", "end-to-end latency: end of stream − request sent", _e2e),
        Metric("schedule_lag_ms", "ms", "load-generator health: actual send − scheduled send (open loop)", _lag),
    ]
}
