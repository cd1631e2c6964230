"""Shared base for every spec model: unknown keys are errors, so a typo never silently does nothing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Spec(BaseModel):
    # `rate: .inf` is meaningful (send all at once); keep it as "Infinity" in JSON rather than pydantic's null.
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True, ser_json_inf_nan="strings")
