"""What is recorded for every request. Times are seconds on one monotonic clock from the run's start."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    index: int
    warmup: bool
    scheduled_s: float | None  # when the schedule said to send (open loop); None in closed loop
    sent_s: float | None = None
    first_token_s: float | None = None  # the first generated token, a reasoning model's thinking included
    first_answer_s: float | None = None  # the first token of the answer itself (after any reasoning)
    end_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)  # arrival of every streamed chunk
    chunk_tokens: list[int] = field(default_factory=list)  # tokens per chunk where known (else 1)
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None  # of output_tokens
    cached_input_tokens: int | None = None  # of input_tokens
    token_count_source: str | None = None
    finish_reason: str | None = None
    output_text: str = ""
    error: str | None = None
    # http | server | connect | disconnected | timeout | truncated | malformed | client | cancelled | engine
    error_kind: str | None = None
    http_status: int | None = None
    prefix_group: int | None = None
    phase: str | None = None  # traffic.phases: the phase it was sent in
    session: int | None = None  # multi-turn: which session (in the order they started) and which turn of it
    turn: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.end_s is not None and self.sent_s is not None

    @property
    def schedule_lag_s(self) -> float | None:
        if self.scheduled_s is None or self.sent_s is None:
            return None
        return self.sent_s - self.scheduled_s

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["schedule_lag_s"] = self.schedule_lag_s
        return row
