"""The run manifest: what every stored run (a measured run, a capacity search, a quality evaluation) records about
itself in manifest.json, so a cost figure can be traced to the specs, code and machine that produced it. Built in one
place, so the three kinds of run record the same provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from infercost.provenance import git_commit, hardware, library_versions, spec_hash
from infercost.redact import redacted_command

if TYPE_CHECKING:
    from infercost.spec.deployment import Deployment
    from infercost.spec.workload import Workload

RunKind = Literal["measured", "capacity", "quality"]
RunStatus = Literal["running", "completed", "failed", "interrupted", "infeasible"]


class RunManifest(BaseModel):
    """A run's manifest.json. Keys a manifest does not have stay absent when written (`as_stored`); keys this model
    does not name (older or newer results, fields added later such as `host_probe`) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    kind: RunKind
    workload: dict[str, Any]  # the workload as run, in strict JSON (an infinite rate is "Infinity")
    deployment: dict[str, Any]  # the deployment as run, secrets redacted
    options: dict[str, Any] | None = None  # a capacity search's CapacityOptions
    workload_hash: str | None = None  # identical specs have identical hashes across runs
    deployment_hash: str | None = None
    tags: dict[str, str] = {}  # the workload's FinOps tags (team, product, ...)
    versions: dict[str, str] = {}
    hardware: dict[str, Any] = {}
    git_commit: str | None = None
    command: str | None = None

    # Set by the run store as the run goes.
    run_id: str | None = None
    status: RunStatus | None = None
    started_at: str | None = None
    ended_at: str | None = None
    reason: str | None = None  # why a run failed or was infeasible
    engine: dict[str, Any] | None = None  # what the engine reported about itself
    memory: dict[str, Any] | None = None
    startup_s: float | None = None
    run_started_at_unix: float | None = None
    stopped_early: str | None = None
    error_limit: dict[str, Any] | None = None
    write_errors: list[str] | None = None

    def as_stored(self) -> dict[str, Any]:
        """The manifest as manifest.json holds it: only the keys it was given, in strict JSON."""
        return self.model_dump(mode="json", exclude_unset=True)


def run_manifest(kind: RunKind, workload: Workload, deployment: Deployment,
                 options: dict[str, Any] | None = None) -> RunManifest:
    """The manifest a new run starts with: the specs as run and their hashes, FinOps tags, library versions,
    hardware, code version and the command line (secrets removed)."""
    w = json.loads(workload.model_dump_json())  # strict JSON: an infinite rate is stored as "Infinity"
    d = json.loads(deployment.model_dump_json())
    fields: dict[str, Any] = {"kind": kind, "workload": w, "deployment": d}
    if options is not None:
        fields["options"] = options
    fields.update(workload_hash=spec_hash(w), deployment_hash=spec_hash(d), tags=workload.tags.as_dict(),
                  versions=library_versions(), hardware=hardware(), git_commit=git_commit(Path(__file__).parent),
                  command=redacted_command())
    return RunManifest(**fields)
