"""The run store and the provenance written with every run."""

from infercost.store.runs import Run, RunStore, RunWriter, load_run

__all__ = ["Run", "RunStore", "RunWriter", "load_run"]
