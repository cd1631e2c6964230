"""Shared base for every spec model: unknown keys are errors, so a typo never silently does nothing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)
