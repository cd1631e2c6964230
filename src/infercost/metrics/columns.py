"""Per-request figures as arrays. A simulated capacity probe has tens of thousands of requests and is judged on a
few percentiles: it is summarised from these columns, without an object per request. Measured runs convert their
records (`Columns.of`), so one vectorised definition of each metric serves both, and is checked against the
per-record one."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from infercost.loadgen.records import RequestRecord


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


@dataclass
class Columns:
    """Times in seconds on the run's clock, NaN where a request has none; token counts NaN where unknown.
    `error` is None when no request failed; `token_times` holds each request's token times in request order,
    `token_counts` of them per request."""

    sent: np.ndarray
    first_token: np.ndarray
    end: np.ndarray
    output_tokens: np.ndarray
    input_tokens: np.ndarray
    error: np.ndarray | None = None
    scheduled: np.ndarray | None = None
    first_answer: np.ndarray | None = None
    token_times: np.ndarray | None = None
    token_counts: np.ndarray | None = None
    sources: dict[str, int] = field(default_factory=dict)  # token-count source -> completed requests

    @cached_property
    def ok(self) -> np.ndarray:
        """Completed: sent, ended and without an error (every metric reads it: computed once)."""
        ok = ~np.isnan(self.end) & ~np.isnan(self.sent)
        if self.error is not None:
            ok &= np.array([e is None for e in self.error], dtype=bool)
        return ok

    @classmethod
    def of(cls, records: list[RequestRecord]) -> "Columns":
        """The measured (not warm-up) records."""
        rs = [r for r in records if not r.warmup]
        errors = [r.error for r in rs]
        sources: dict[str, int] = {}
        for r in rs:
            if r.ok:
                sources[r.token_count_source or "unknown"] = sources.get(r.token_count_source or "unknown", 0) + 1
        return cls(sent=_floats(r.sent_s for r in rs), first_token=_floats(r.first_token_s for r in rs),
                   end=_floats(r.end_s for r in rs), output_tokens=_floats(r.output_tokens for r in rs),
                   input_tokens=_floats(r.input_tokens for r in rs),
                   error=np.array(errors, dtype=object) if any(e is not None for e in errors) else None,
                   scheduled=_floats(r.scheduled_s for r in rs), first_answer=_floats(r.first_answer_s for r in rs),
                   token_times=np.array([t for r in rs for t in r.token_times_s], dtype=float),
                   token_counts=np.array([len(r.token_times_s) for r in rs], dtype=np.int64), sources=sources)
