"""The quality bar a cheaper configuration must still clear: how answers are scored and what score is enough."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from infercost.spec.common import Spec


class ScorerSpec(Spec):
    """One scorer by registered name (exact, contains, regex, rouge_l, embedding_similarity, json_valid, choice) or
    a user function as "module:function", with its weight in the per-prompt score and its parameters."""

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)


class QualityTarget(Spec):
    """Absolute (mean score and/or pass rate over prompts) or relative to a baseline deployment's answers."""

    mean_score: float | None = Field(default=None, ge=0, le=1)
    pass_rate: float | None = Field(default=None, ge=0, le=1)
    threshold: float = Field(default=0.5, ge=0, le=1, description="per-prompt score that counts as a pass")
    baseline: str | dict[str, Any] | None = Field(
        default=None, description="deployment whose answers are the reference: a YAML path or an inline mapping"
    )
    agreement: float | None = Field(default=None, ge=0, le=1, description="mean agreement with the baseline")
    agreement_scorer: ScorerSpec = Field(default_factory=lambda: ScorerSpec(name="rouge_l"))

    @model_validator(mode="after")
    def _complete(self) -> "QualityTarget":
        if self.baseline is not None and self.agreement is None:
            raise ValueError("a baseline needs 'agreement' (the mean agreement to reach, 0..1)")
        if self.agreement is not None and self.baseline is None:
            raise ValueError("'agreement' needs a 'baseline' deployment")
        if self.mean_score is None and self.pass_rate is None and self.agreement is None:
            raise ValueError("give at least one of 'mean_score', 'pass_rate' or 'agreement' (with 'baseline')")
        return self


class QualitySpec(Spec):
    scorers: list[ScorerSpec] = Field(default_factory=lambda: [ScorerSpec(name="contains")], min_length=1)
    target: QualityTarget | None = None
    sample_size: int | None = Field(default=None, gt=0, description="evaluate a fixed-size seeded sample")
    sample_seed: int = 0
    max_tokens: int | None = Field(default=None, gt=0, description="default: the workload's sampling.max_tokens")
    early_stop: bool = True
    batch_size: int = Field(default=16, gt=0, description="prompts generated between early-stop checks")
