"""The workload: what is asked (prompts), how it arrives (traffic), what counts as good enough (SLOs), how much of it
there is (demand), and who pays for it (tags)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from infercost.spec.common import FileSpec, Spec
from infercost.spec.files import MAX_PROMPTS
from infercost.spec.quality import QualitySpec
from infercost.spec.vocabulary import SLO_METRICS, percentile


class Tags(Spec):
    """FinOps allocation keys carried onto every result and cost row."""

    model_config = {"extra": "allow"}
    team: str | None = None
    product: str | None = None
    use_case: str | None = None
    environment: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.model_dump().items() if v is not None}


class ChatMessage(Spec):
    role: Literal["system", "user", "assistant"]
    content: str


class PromptItem(Spec):
    """One prompt: plain text (completion) or chat messages, with an optional reference answer for quality."""

    id: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    reference: str | None = None
    must_contain: list[str] | None = None
    max_tokens: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> "PromptItem":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("each prompt needs exactly one of 'prompt' (text) or 'messages' (chat)")
        return self


class InlinePrompts(Spec):
    source: Literal["inline"]
    items: list[Union[str, PromptItem]] = Field(min_length=1)


class JsonlPrompts(Spec):
    """A JSONL file, one prompt per line; relative paths are resolved against the workload file."""

    source: Literal["jsonl"]
    path: str
    limit: int | None = Field(default=None, gt=0)


class LengthDist(Spec):
    """A token-length distribution. `fixed` uses `mean`; `uniform` draws in [min, max]; `normal` is clipped to
    [min, max]."""

    dist: Literal["fixed", "uniform", "normal"] = "fixed"
    # 16M tokens is beyond any context window; the bound keeps numpy's draws within int64.
    mean: int | None = Field(default=None, gt=0, le=1 << 24)
    std: float = Field(default=0.0, ge=0, le=1 << 24)
    min: int | None = Field(default=None, gt=0, le=1 << 24)
    max: int | None = Field(default=None, gt=0, le=1 << 24)

    @model_validator(mode="after")
    def _complete(self) -> "LengthDist":
        if self.dist in ("fixed", "normal") and self.mean is None:
            raise ValueError(f"'{self.dist}' needs 'mean'")
        if self.dist == "uniform" and (self.min is None or self.max is None):
            raise ValueError("'uniform' needs 'min' and 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) must not exceed 'max' ({self.max})")
        return self


# Synthetic text is generated in memory, by `validate` too: a few lines of YAML must not ask for gigabytes. 20M tokens
# is ~100 MB of text, e.g. 10,000 prompts of 2,000 tokens; prompts repeat when the traffic needs more requests.
MAX_SYNTHETIC_TOKENS = 20_000_000
_LONGEST = 1 << 20  # draw_lengths clips an unbounded normal draw here


def _upper_tokens(dist: LengthDist) -> float:
    """About the most tokens one draw gives (fixed: mean; uniform: max; normal: mean + 3 std, clipped)."""
    if dist.dist == "uniform":
        return dist.max or 0
    if dist.dist == "normal":
        return min(dist.max or _LONGEST, (dist.mean or 0) + 3 * dist.std)
    return dist.mean or 0


class SyntheticPrompts(Spec):
    """Random-text prompts of controlled token lengths, like vLLM's random dataset. A shared prefix of
    `shared_prefix_tokens` tokens, one of `prefix_groups` distinct prefixes per request, exercises prefix caching."""

    source: Literal["synthetic"]
    count: int = Field(default=100, gt=0, le=MAX_PROMPTS)
    input_tokens: LengthDist
    output_tokens: LengthDist
    shared_prefix_tokens: int = Field(default=0, ge=0)
    prefix_groups: int = Field(default=1, gt=0, le=MAX_PROMPTS)

    @model_validator(mode="after")
    def _bounded(self) -> "SyntheticPrompts":
        total = self.count * _upper_tokens(self.input_tokens) + self.prefix_groups * self.shared_prefix_tokens
        if total > MAX_SYNTHETIC_TOKENS:
            raise ValueError(f"asks for about {total:,.0f} tokens of synthetic text (count x input_tokens + "
                             f"prefix_groups x shared_prefix_tokens); the limit is {MAX_SYNTHETIC_TOKENS:,}")
        return self


class DatasetFields(Spec):
    """Which fields of a dataset row hold the prompt (text, or chat messages), the reference answer and the id."""

    prompt: str | None = None
    messages: str | None = None
    reference: str | None = None
    id: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "DatasetFields":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' (a text field) or 'messages' (a field of chat messages)")
        return self


class DatasetPrompts(Spec):
    """Prompts from a dataset on local disk: a ShareGPT JSON file (the first human turn is the prompt, the reply
    after it the reference), or a Hugging Face dataset (saved with save_to_disk, data files, or the local cache;
    nothing is downloaded) with `fields` naming what is what. Sampled with a seed and filtered by length."""

    source: Literal["dataset"]
    format: Literal["sharegpt", "hf"]
    path: str = Field(description="file or directory, relative to the workload file; hf: or a cached dataset name")
    name: str | None = Field(default=None, description="hf: the configuration name")
    split: str = Field(default="train", description="hf: the split")
    fields: DatasetFields | None = Field(default=None, description="hf only")
    sample: int | None = Field(default=None, gt=0, le=MAX_PROMPTS, description="how many prompts (seeded)")
    seed: int = 0
    min_input_tokens: int | None = Field(default=None, ge=0, description="estimated at 4 characters a token")
    max_input_tokens: int | None = Field(default=None, gt=0)
    output_tokens: Literal["sampling", "reference"] = Field(
        default="sampling", description="max_tokens from sampling.max_tokens, or from the reference answer's length "
        "(as vLLM's ShareGPT benchmark does)")

    @model_validator(mode="after")
    def _fields(self) -> "DatasetPrompts":
        if self.format == "hf" and self.fields is None:
            raise ValueError("format 'hf' needs 'fields' (prompt or messages, and optionally reference and id)")
        if self.format == "sharegpt" and self.fields is not None:
            raise ValueError("'fields' is for format 'hf': ShareGPT files have fixed fields (conversations)")
        if self.min_input_tokens and self.max_input_tokens and self.min_input_tokens > self.max_input_tokens:
            raise ValueError("min_input_tokens must not exceed max_input_tokens")
        return self


class ThinkTime(Spec):
    """The pause between an answer and the user's next turn: exponential (a person's) or fixed, in seconds."""

    dist: Literal["exponential", "fixed"] = "exponential"
    mean_s: float = Field(default=5.0, ge=0, le=3600)


class SyntheticSessions(Spec):
    sessions: int = Field(default=20, gt=0, le=100_000)
    turns: LengthDist = Field(description="turns per session (a length distribution of whole numbers)")
    input_tokens: LengthDist = Field(description="tokens of each user turn")
    output_tokens: LengthDist = Field(description="tokens of each answer (ignore_eos)")


class SessionPrompts(Spec):
    """Multi-turn conversations. Each turn sends the whole history as chat messages (the answers the server really
    gave, not the file's); the next turn goes out after the answer plus a think time. The traffic's arrivals start new
    sessions (open loop across sessions, closed loop within one), and num_requests counts sessions."""

    source: Literal["sessions"]
    path: str | None = Field(default=None, description="ShareGPT-style conversations (JSON list or JSONL): the human "
                             "turns are sent; the replies size each answer (output_tokens: reference)")
    synthetic: SyntheticSessions | None = None
    think_time: ThinkTime = Field(default_factory=ThinkTime)
    max_turns: int = Field(default=16, gt=0, le=1000)
    output_tokens: Literal["sampling", "reference"] = Field(
        default="sampling", description="file only: max_tokens from sampling.max_tokens or each reply's length")

    @model_validator(mode="after")
    def _one(self) -> "SessionPrompts":
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("give exactly one of 'path' (conversations) or 'synthetic'")
        if self.synthetic is not None:
            sy = self.synthetic
            total = sy.sessions * _upper_tokens(sy.turns) * _upper_tokens(sy.input_tokens)
            if total > MAX_SYNTHETIC_TOKENS:
                raise ValueError(f"asks for about {total:,.0f} tokens of synthetic text (sessions x turns x "
                                 f"input_tokens); the limit is {MAX_SYNTHETIC_TOKENS:,}")
        return self


class TracePrompts(Spec):
    """Prompts made to the lengths of a traced request each (traffic.trace): random words cut with the deployment's
    tokenizer to the exact input length, answers run to the exact output length (ignore_eos), and the trace's block
    hashes (Mooncake's hash_ids) turned into identical text blocks, so prefix caching sees the trace's own reuse."""

    source: Literal["trace"]


PromptSource = Annotated[Union[InlinePrompts, JsonlPrompts, SyntheticPrompts, DatasetPrompts, SessionPrompts,
                               TracePrompts],
                         Field(discriminator="source")]


class Sampling(Spec):
    max_tokens: int = Field(default=128, gt=0)
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    ignore_eos: bool = False
    seed: int | None = None


MAX_PLANNED_REQUESTS = 10_000_000  # a schedule of that many arrival times is 80 MB
MAX_DURATION_S = 7 * 86_400


class TraceColumns(Spec):
    """Which columns of a plain CSV trace hold what."""

    arrival: str = Field(description="arrival time: seconds (or ms, see time_unit) or a date-time")
    input_tokens: str
    output_tokens: str
    session_id: str | None = None
    time_unit: Literal["s", "ms"] = "s"


class TraceSpec(Spec):
    """A production trace to replay: its arrival times and each request's input and output lengths."""

    path: str = Field(description="the trace file, relative to the workload file")
    format: Literal["azure", "mooncake", "csv"] = Field(
        description="azure: CSV TIMESTAMP,ContextTokens,GeneratedTokens (Azure LLM inference traces); mooncake: "
        "JSONL with timestamp (ms), input_length, output_length, hash_ids; csv: columns named in `columns`")
    columns: TraceColumns | None = Field(default=None, description="format csv only")
    start_s: float = Field(default=0.0, ge=0, description="window start, seconds after the trace's first arrival")
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S, description="window length (default: "
                                     "to the end)")
    speed: float = Field(default=1.0, gt=0, le=1e6, description="time compression: 2 replays the window twice as "
                         "fast")
    block_tokens: int = Field(default=512, gt=0, le=1 << 16, description="tokens per hash block (mooncake)")

    @model_validator(mode="after")
    def _columns(self) -> "TraceSpec":
        if self.format == "csv" and self.columns is None:
            raise ValueError("format 'csv' needs 'columns' (arrival, input_tokens, output_tokens)")
        if self.format != "csv" and self.columns is not None:
            raise ValueError(f"'columns' is for format 'csv': format '{self.format}' has fixed columns")
        return self


class Phase(Spec):
    """A stretch of the run at one rate, or ramping linearly between two (warm-up, ramp, steady, spike)."""

    name: str = Field(min_length=1, max_length=64)
    rate: float | tuple[float, float] = Field(description="requests per second, or [from, to] for a linear ramp")
    duration_s: float = Field(gt=0, le=MAX_DURATION_S)
    exclude: bool = Field(default=False, description="a warm-up: sent, reported per phase, but left out of the "
                          "run's figures and SLO")

    @field_validator("rate")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        rates = v if isinstance(v, tuple) else (v,)
        if any(not math.isfinite(r) or r < 0 for r in rates) or max(rates) <= 0:
            raise ValueError("expected a finite rate in requests per second (a ramp may start at 0, not both ends)")
        return v

    def rate_at(self, t: float) -> float:
        if not isinstance(self.rate, tuple):
            return self.rate
        a, b = self.rate
        return a + (b - a) * t / self.duration_s


class Traffic(Spec):
    """How requests arrive. Open loop (`poisson`, `constant`, `gamma`): arrival times are drawn up front and each
    request is sent at its time whether or not earlier ones finished. Closed loop (`concurrency`): a fixed number of
    users, each sending its next request when the previous one ends. Trace (`trace`): each request at its traced
    offset in the window, after `trace.speed`'s compression."""

    arrival: Literal["poisson", "constant", "gamma", "concurrency", "trace"] = "poisson"
    trace: TraceSpec | None = Field(default=None, description="arrival 'trace' only")
    phases: list[Phase] | None = Field(default=None, description="open loop in stretches of their own rate "
                                       "(instead of rate and num_requests / duration_s); figures per phase")
    rate: float | None = Field(default=None, gt=0, description="requests per second (open loop); 'inf' sends all at once")
    burstiness: float = Field(default=1.0, gt=0, description="gamma shape: <1 burstier than Poisson, >1 smoother")
    concurrency: int | None = Field(default=None, gt=0, description="closed-loop users")
    num_requests: int | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)
    warmup_requests: int = Field(default=0, ge=0)
    request_timeout_s: float = Field(default=300.0, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> "Traffic":
        if self.arrival == "trace" or self.trace is not None:
            return self._trace()
        if self.phases is not None:
            return self._phased()
        if self.arrival == "concurrency":
            if self.concurrency is None:
                raise ValueError("arrival 'concurrency' needs 'concurrency' (number of closed-loop users)")
        elif self.rate is None:
            raise ValueError(f"arrival '{self.arrival}' needs 'rate' (requests per second, or inf)")
        if self.num_requests is None and self.duration_s is None:
            raise ValueError("give 'num_requests' or 'duration_s'")
        if self.arrival == "gamma" and self.rate is not None and math.isinf(self.rate):
            raise ValueError("arrival 'gamma' needs a finite 'rate'")
        # A field the arrival process does not read would silently do nothing; two ends of the run would race.
        if self.num_requests is not None and self.duration_s is not None:
            raise ValueError("give 'num_requests' (how many requests) or 'duration_s' (how long), not both")
        if self.arrival == "concurrency" and self.rate is not None:
            raise ValueError("'rate' is for open-loop arrivals (poisson, constant, gamma): arrival 'concurrency' "
                             "sends as fast as its 'concurrency' users allow")
        if self.arrival != "concurrency" and self.concurrency is not None:
            raise ValueError(f"'concurrency' is for arrival 'concurrency' (closed loop): arrival '{self.arrival}' "
                             "sends at 'rate'")
        if self.arrival != "gamma" and self.burstiness != 1.0:
            raise ValueError(f"'burstiness' shapes arrival 'gamma' only: arrival '{self.arrival}' would ignore it")
        if self.duration_s is not None and self.rate is not None and math.isinf(self.rate):
            raise ValueError("rate .inf sends every request at once, so there is no duration to fill: expected "
                             "'num_requests' instead of 'duration_s'")
        # Arrival times are drawn up front: a two-line file must not ask for a schedule that fills the machine.
        planned = self.num_requests or (self.duration_s * self.rate if self.rate else 0)
        if planned > MAX_PLANNED_REQUESTS:
            raise ValueError(f"plans {planned:.3g} requests: at most {MAX_PLANNED_REQUESTS:,} per run "
                             "(num_requests, or duration_s x rate)")
        if self.duration_s is not None and self.duration_s > MAX_DURATION_S:
            raise ValueError(f"duration_s {self.duration_s:g} is more than {MAX_DURATION_S:,} s (7 days) per run")
        return self

    def _phased(self) -> "Traffic":
        if self.arrival not in ("poisson", "constant", "gamma"):
            raise ValueError(f"phases are open-loop stretches: arrival '{self.arrival}' has none (expected poisson, "
                             "constant or gamma)")
        if not self.phases:
            raise ValueError("phases: expected at least one phase")
        given = [k for k in ("rate", "num_requests", "duration_s") if getattr(self, k) is not None]
        if given:
            raise ValueError(f"'{given[0]}' does not apply with phases: each phase has its own rate and duration_s")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError("phases: each phase needs its own name (the figures are reported by name)")
        if all(p.exclude for p in self.phases):
            raise ValueError("phases: every phase is excluded: nothing would be measured")
        planned = sum(max(p.rate if not isinstance(p.rate, tuple) else max(p.rate), 0) * p.duration_s
                      for p in self.phases)
        if planned > MAX_PLANNED_REQUESTS:
            raise ValueError(f"phases plan about {planned:.3g} requests: at most {MAX_PLANNED_REQUESTS:,} per run")
        if sum(p.duration_s for p in self.phases) > MAX_DURATION_S:
            raise ValueError(f"phases last more than {MAX_DURATION_S:,} s (7 days) per run")
        return self

    def _trace(self) -> "Traffic":
        if self.arrival != "trace":
            raise ValueError(f"'trace' is for arrival 'trace': arrival '{self.arrival}' would ignore it")
        if self.trace is None:
            raise ValueError("arrival 'trace' needs 'trace' (path and format of the trace file)")
        given = [k for k in ("rate", "concurrency", "num_requests", "duration_s") if getattr(self, k) is not None]
        if given or self.burstiness != 1.0:
            raise ValueError(f"'{(given or ['burstiness'])[0]}' does not apply to arrival 'trace': the trace sets "
                             "when each request arrives (trace.start_s, trace.duration_s and trace.speed choose the "
                             "window and its pace)")
        return self


class LatencyTarget(Spec):
    """Upper bounds in milliseconds keyed by statistic: p50, p90, p95, p99, p99.9, mean, max."""

    model_config = {"extra": "allow"}

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        if isinstance(data, (int, float)):
            return {"p95": data}
        if not isinstance(data, dict) or not data:
            raise ValueError("expected a mapping like {p95: 500} (milliseconds)")
        for key, value in data.items():
            percentile(str(key))  # an unknown statistic is a ValueError that lists the known ones
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"'{key}' must be a positive number of milliseconds, got {value!r}")
        return data

    def bounds(self) -> dict[str, float]:
        return {k: float(v) for k, v in (self.model_extra or {}).items()}


class SLO(Spec):
    ttft_ms: LatencyTarget | None = None
    tpot_ms: LatencyTarget | None = None
    itl_ms: LatencyTarget | None = None
    e2e_ms: LatencyTarget | None = None
    max_error_rate: float = Field(default=0.01, ge=0, le=1)

    def targets(self) -> dict[str, dict[str, float]]:
        out = {}
        for metric in SLO_METRICS:
            target = getattr(self, metric)
            if target is not None:
                out[metric] = target.bounds()
        return out


class Demand(Spec):
    """Expected production traffic, used to size the fleet and the monthly bill."""

    peak_rps: float | None = Field(default=None, gt=0)
    requests_per_day: float | None = Field(default=None, gt=0)
    hourly_profile: list[float] | None = Field(default=None, description="24 relative weights, hour 0..23 (UTC)")

    @field_validator("hourly_profile")
    @classmethod
    def _profile(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 24 or any(x < 0 for x in v) or sum(v) <= 0):
            raise ValueError("expected 24 non-negative weights with a positive sum")
        return v


class Budget(Spec):
    """A monthly budget for this workload and the shares of it at which to warn and to call it breached."""

    monthly: float = Field(gt=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    warn_at: float = Field(default=0.8, gt=0)
    breach_at: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> "Budget":
        if self.warn_at > self.breach_at:
            raise ValueError(f"warn_at ({self.warn_at}) must not exceed breach_at ({self.breach_at})")
        return self


class Value(Spec):
    """What one served request is worth to the business (e.g. support cost saved per resolved ticket)."""

    per_request: float = Field(ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    basis: str | None = Field(default=None, description="how the value was estimated")


class Workload(FileSpec):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str | None = None
    tags: Tags = Field(default_factory=Tags)
    api: Literal["chat", "completion"] = "chat"
    system_prompt: str | None = None
    prompts: PromptSource
    sampling: Sampling = Field(default_factory=Sampling)
    traffic: Traffic
    slo: SLO = Field(default_factory=SLO)
    demand: Demand = Field(default_factory=Demand)
    quality: QualitySpec | None = None
    budget: Budget | None = None
    value: Value | None = None

    @model_validator(mode="before")
    @classmethod
    def _trace_prompts(cls, data: Any) -> Any:
        """A traced workload's prompts are made to the trace's lengths: `prompts` may be left out."""
        if isinstance(data, dict) and "prompts" not in data and isinstance(data.get("traffic"), dict) \
                and data["traffic"].get("arrival") == "trace":
            return {**data, "prompts": {"source": "trace"}}
        return data

    @model_validator(mode="after")
    def _trace_consistent(self) -> "Workload":
        traced = self.traffic.arrival == "trace"
        if traced and not isinstance(self.prompts, TracePrompts):
            raise ValueError("arrival 'trace' sends the trace's own requests: prompts must be {source: trace} (or "
                             "left out)")
        if not traced and isinstance(self.prompts, TracePrompts):
            raise ValueError("prompts {source: trace} need traffic.arrival 'trace' and traffic.trace")
        if isinstance(self.prompts, SessionPrompts) and self.api != "chat":
            raise ValueError("multi-turn sessions send their history as chat messages: expected api: chat")
        if isinstance(self.prompts, SessionPrompts) and self.traffic.arrival == "concurrency":
            raise ValueError("sessions start by an open-loop arrival process (poisson, constant, gamma): each one is "
                             "closed-loop within itself")
        return self
