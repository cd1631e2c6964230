"""What runs on a cluster node for one trial: the same evaluation as in-process, with this node's accelerator
measured rather than projected, into a scratch store whose files go back to the driver twice: copied as they
change (so a node that dies mid-trial leaves its partial records with the driver), and whole with the result."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from infercost.provenance import hardware as this_hardware
from infercost.search.evaluate import Evaluator, TrialOutcome
from infercost.store import RunStore

MIRROR_EVERY_S = 1.0
MAX_FILE_BYTES = 64 * 2**20  # a file larger than this stays on the node (its path is recorded)


def files_under(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.stat().st_size <= MAX_FILE_BYTES:
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


class Mirror:
    """Sends each file of `root` that changed since the last look to `send(relpath, data)`, every MIRROR_EVERY_S."""

    def __init__(self, root: Path, send: Callable[[str, bytes], None]):
        self.root, self.send = root, send
        self._seen: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="infercost-mirror", daemon=True)

    def __enter__(self) -> "Mirror":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(MIRROR_EVERY_S):
            self.sync()

    def sync(self) -> None:
        for path in sorted(self.root.rglob("*")):
            try:
                st = path.stat()
                if not path.is_file() or st.st_size > MAX_FILE_BYTES:
                    continue
                stamp = (st.st_size, st.st_mtime_ns)
                rel = str(path.relative_to(self.root))
                if self._seen.get(rel) != stamp:
                    self.send(rel, path.read_bytes())
                    self._seen[rel] = stamp
            except OSError:  # a file being replaced: the next look sends it
                continue
            except Exception:  # the driver's queue is gone: the records stay on this node and come back whole
                return


def node_facts(resource: str | None, standin: str | None) -> dict[str, Any]:
    """Where this trial ran, for its provenance."""
    facts: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "resource": resource,
                             "hardware": this_hardware(), "standin": standin}
    try:
        import ray

        ctx = ray.get_runtime_context()
        facts.update(node_id=ctx.get_node_id(), ray=ray.__version__, address=ray.util.get_node_ip_address())
    except Exception:
        pass
    return facts


def evaluate_on_node(payload: dict[str, Any], send: Callable[[str, bytes], None] | None = None) -> dict[str, Any]:
    """Evaluates one configuration here, measuring its accelerator (or the stand-in). `payload`: spec, workload,
    catalog, cfg, resource (the Ray label it was placed by), standin (a deployment mapping or None). Returns the
    outcome, the capacity it measured, this node's facts and every file it wrote, with paths relative to its
    scratch store (the driver rewrites them to where it keeps them)."""
    cfg = payload["cfg"]
    standin = payload.get("standin")
    scratch = Path(tempfile.mkdtemp(prefix="infercost-trial-"))
    started = datetime.now(timezone.utc).isoformat()
    t0 = time.monotonic()
    evaluator = Evaluator(payload["spec"], payload["workload"], RunStore(scratch), payload["catalog"],
                          measured_on=lambda c: c.hardware == cfg.hardware, standin=standin)
    label = None
    if standin is not None:
        d = evaluator.measured_deployment(cfg, evaluator.deployment(cfg))
        label = f"{d.engine} {d.model}" + (f" at {d.base_url}" if getattr(d, "base_url", None) else "")
    try:
        if send is not None:
            with Mirror(scratch, send) as mirror:
                outcome = asyncio.run(evaluator.evaluate(cfg))
                mirror.sync()
        else:
            outcome = asyncio.run(evaluator.evaluate(cfg))
        facts = node_facts(payload.get("resource"), label)
        facts.update(started_at=started, ended_at=datetime.now(timezone.utc).isoformat(),
                     seconds=round(time.monotonic() - t0, 3))
        capacity = evaluator.capacity_of(cfg)
        return {"outcome": outcome.model_dump_json(), "scratch": str(scratch), "node": facts,
                "capacity": capacity.model_dump_json() if capacity is not None else None,
                "files": files_under(scratch)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def outcome_of(result: dict[str, Any], where: Path) -> tuple[TrialOutcome, str | None]:
    """The node's outcome and capacity JSON with its scratch paths pointing at `where`, the driver's copy."""
    scratch = result["scratch"]
    text = result["outcome"].replace(scratch, str(where))
    capacity = result["capacity"].replace(scratch, str(where)) if result.get("capacity") else None
    return TrialOutcome.model_validate_json(text), capacity
