"""The run store and the provenance written with every run."""

from infercost.store.manifest import RunManifest, run_manifest
from infercost.store.runs import Run, RunStore, RunWriter, load_run

__all__ = ["Run", "RunManifest", "RunStore", "RunWriter", "load_run", "run_manifest"]
