"""Where a study's trials run. In-process by default; `ray` sends each measured placement to a node of a Ray
cluster that has its accelerator (extra `infercost[ray]`). An executor has a narrow interface: `attach(evaluator)`,
`evaluate(cfg)` for one configuration, `run(steps, remaining, wanted)` for the study, and `close()`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infercost.errors import InputError

EXECUTORS = ("local", "ray")


def executor_for(name: str | None, address: str | None = None, results_root: str | Path = "results") -> Any:
    """The executor called `name`, connected; None for in-process evaluation."""
    if name in (None, "local"):
        if address:
            raise InputError("--address is for --executor ray", field="--address")
        return None
    if name == "ray":
        from infercost.search.dispatch.ray_executor import RayExecutor, standin_from_env

        return RayExecutor(address, standin_from_env(), results_root)
    raise InputError(f"unknown executor {name!r}: expected one of {', '.join(EXECUTORS)}", field="--executor")
