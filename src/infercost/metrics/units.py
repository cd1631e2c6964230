"""Each metric is a small unit with a name, a unit and the per-request inputs it reads. Definitions follow vLLM's
benchmarks so numbers compare: TTFT = first token − send; TPOT = (e2e − TTFT) / (output tokens − 1);
ITL = every gap between streamed chunks, pooled over requests; e2e = end of stream − send. A reasoning model's
thinking tokens are output tokens (they are generated and billed as such): TTFT is its first thinking token, and the
time to its first answer token is a metric of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from infercost.loadgen.records import RequestRecord
from infercost.metrics.columns import Columns


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    description: str
    values: Callable[[RequestRecord], list[float]]  # zero or more samples from one completed request
    # the same definition over columns: one value per request, NaN where a request has none (`per_request`), or
    # the pooled samples
    column: Callable[[Columns], np.ndarray]
    per_request: bool = True


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


def _since_sent(c: Columns, t: np.ndarray | None) -> np.ndarray:
    """Completed requests only, as the per-record metrics are computed over completed requests."""
    if t is None:
        return np.full(len(c.sent), np.nan)
    return np.where(c.ok, (t - c.sent) * 1e3, np.nan)


def _tpot_column(c: Columns) -> np.ndarray:
    n = c.output_tokens
    usable = c.ok & ~np.isnan(c.first_token) & (n >= 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((c.end - c.sent) - (c.first_token - c.sent)) * 1e3 / (n - 1)
    return np.where(usable, out, np.nan)


def _itl_column(c: Columns) -> np.ndarray:
    if c.token_times is None or c.token_counts is None or len(c.token_times) < 2:
        return np.zeros(0)
    owner = np.repeat(np.arange(len(c.token_counts)), c.token_counts)
    same = (owner[1:] == owner[:-1]) & c.ok[owner[:-1]]
    return (np.diff(c.token_times) * 1e3)[same]


def _lag_column(c: Columns) -> np.ndarray:
    return (c.sent - c.scheduled) * 1e3 if c.scheduled is not None else np.full(len(c.sent), np.nan)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("ttft_ms", "ms", "time to first token: first streamed token − request sent (a reasoning model's "
               "first thinking token counts)", _ttft, lambda c: _since_sent(c, c.first_token)),
        Metric("answer_ttft_ms", "ms", "time to first answer token: first token of the answer − request sent (after "
               "a reasoning model's thinking; equal to TTFT for a model that does not reason)", _answer_ttft,
               lambda c: _since_sent(c, c.first_answer)),
        Metric("tpot_ms", "ms", "time per output token after the first: (e2e − TTFT) / (output tokens − 1)", _tpot,
               _tpot_column),
        Metric("itl_ms", "ms", "inter-token latency: each gap between streamed chunks, pooled", _itl, _itl_column,
               per_request=False),
        Metric("e2e_ms", "ms", "end-to-end latency: end of stream − request sent", _e2e,
               lambda c: _since_sent(c, c.end)),
        Metric("schedule_lag_ms", "ms", "load-generator health: actual send − scheduled send (open loop)", _lag,
               _lag_column),
    ]
}
