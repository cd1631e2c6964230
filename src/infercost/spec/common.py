"""Shared bases for spec models: unknown keys are errors, so a typo never silently does nothing; a spec read from a
file reads the paths written in it from that file's folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, PrivateAttr


class Spec(BaseModel):
    # `rate: .inf` is meaningful (send all at once); keep it as "Infinity" in JSON rather than pydantic's null.
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True, ser_json_inf_nan="strings")


class FileSpec(Spec):
    """A spec loaded from a file (the loader sets `_source_dir`): a relative path inside it is relative to that file,
    not to wherever the command runs."""

    _source_dir: Path | None = PrivateAttr(default=None)

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        if not path.is_absolute() and self._source_dir is not None:
            path = self._source_dir / path
        return path
