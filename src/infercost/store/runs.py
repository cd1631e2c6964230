"""The run store: `results/<run-id>/` with manifest.json, requests.jsonl (appended as the run goes, so an interrupted
run keeps its measurements), requests.parquet and summary.json (written at the end)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from infercost.errors import InputError
from infercost.loadgen.records import RequestRecord
from infercost.metrics.summary import RunSummary
from infercost.store.manifest import RunManifest


class ResultsWriteError(OSError):
    """Results could not be written (a full or read-only disk). The run stops and says so; what is on disk stays."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60]


def _write_json(path: Path, data: Any) -> None:
    """Written whole or not at all: a full disk leaves the previous version, never half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stored_path(path: str | Path, base: str | Path) -> str:
    """A path as a results file records it: relative to the directory holding that file, so the folder can be
    copied or moved and still find what it names."""
    return Path(os.path.relpath(Path(path).absolute(), Path(base).absolute())).as_posix()


def resolve_stored(recorded: str | Path, base: str | Path) -> Path:
    """A recorded path read back against the directory of the file that names it. Older results recorded absolute
    paths: the same tail under `base` is preferred (a copied folder reads its own copy), then the path as written."""
    path, base = Path(recorded), Path(base)
    if not path.is_absolute():
        return base / path
    parts = path.parts[1:]
    for i in range(len(parts)):
        candidate = base.joinpath(*parts[i:])
        if candidate.exists():
            return candidate
    return path


def update_manifest(directory: str | Path, **fields: Any) -> None:
    """Add fields to a finished run's manifest (e.g. the host probe recorded when its runs are calibrated)."""
    path = Path(directory) / "manifest.json"
    _write_json(path, {**json.loads(path.read_text()), **fields})


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunWriter:
    """Writes one run. Status moves running → completed | failed | interrupted | infeasible; the manifest always says
    which. A write that fails (full or read-only disk) raises ResultsWriteError once and nothing more is appended, so
    the records already on disk stay readable."""

    def __init__(self, directory: Path, manifest: RunManifest, records: str = "requests",
                 summary_name: str | None = None):
        self.dir = directory
        self.records = records
        self.summary_name = summary_name or ("summary.json" if records == "requests" else f"{records}.json")
        # manifest.json as it stands: keys in the order they were recorded
        self._stored = {"run_id": directory.name, "status": "running", "started_at": utc_now(), **manifest.as_stored()}
        self.write_error: str | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=False)
            _write_json(self.dir / "manifest.json", self._stored)
            self._jsonl = (self.dir / f"{records}.jsonl").open("a", encoding="utf-8")
        except OSError as exc:  # nothing has run yet: this is the results directory the user gave
            raise InputError(f"cannot write results ({exc.strerror or exc}): expected a writable directory",
                             source=str(directory.parent)) from None

    @property
    def manifest(self) -> RunManifest:
        """The manifest as last written."""
        return RunManifest.model_validate(self._stored)

    def update(self, **fields: Any) -> None:
        self._stored.update(fields)
        _write_json(self.dir / "manifest.json", self._stored)

    def add(self, record: RequestRecord | dict[str, Any]) -> None:
        if self.write_error is not None:
            raise ResultsWriteError(self.write_error)
        row = record if isinstance(record, dict) else record.to_row()
        try:
            self._jsonl.write(json.dumps(row, default=str) + "\n")
            self._jsonl.flush()
        except OSError as exc:
            self.write_error = f"{self.records}.jsonl: {exc.strerror or exc}"
            raise ResultsWriteError(exc.errno, self.write_error) from exc

    def finish(self, status: str, summary: dict[str, Any] | None, **fields: Any) -> str:
        """Close the run: the records as parquet, the summary, then the manifest with its final status. Each part
        is tried on its own; one that cannot be written turns a completed run into a failed one, with the reason.
        Returns the status recorded; raises ResultsWriteError when the manifest itself could not be written."""
        problems: list[str] = [self.write_error] if self.write_error else []
        try:
            self._jsonl.close()
        except OSError as exc:
            if not self.write_error:
                problems.append(f"{self.records}.jsonl: {exc.strerror or exc}")
        try:
            frame = read_jsonl(self.dir / f"{self.records}.jsonl")
            if not frame.empty:
                target = self.dir / f"{self.records}.parquet"
                tmp = target.with_suffix(".parquet.tmp")
                try:
                    frame.to_parquet(tmp, index=False)
                    tmp.replace(target)
                finally:
                    tmp.unlink(missing_ok=True)
        except Exception as exc:  # OSError, or pyarrow's own error for a failed write
            problems.append(f"{self.records}.parquet: {getattr(exc, 'strerror', None) or exc}")
        if summary is not None:
            try:
                _write_json(self.dir / self.summary_name, summary)
            except OSError as exc:
                problems.append(f"{self.summary_name}: {exc.strerror or exc}")
        if problems:
            problems = list(dict.fromkeys(problems))
            if status == "completed":
                status = "failed"
            prior = fields.get("reason") or ""
            if "writing results failed" not in prior:
                fields["reason"] = "; ".join(filter(None, [prior, "writing results failed: " + "; ".join(problems)]))
            fields["write_errors"] = problems
        try:
            self.update(status=status, ended_at=utc_now(), **fields)
        except OSError as exc:
            raise ResultsWriteError(exc.errno, f"manifest.json: {exc.strerror or exc} (it still says "
                                    f"'{self._stored.get('status', 'running')}'); "
                                    + (fields.get("reason") or "")) from exc
        return status


class RunStore:
    def __init__(self, root: str | Path = "results"):
        self.root = Path(root)

    def new_run(self, name: str, manifest: RunManifest, records: str = "requests",
                summary_name: str | None = None) -> RunWriter:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = f"{stamp}-{_slug(name)}"
        candidate, n = self.root / base, 1
        while candidate.exists():
            n += 1
            candidate = self.root / f"{base}-{n}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the results directory ({exc.strerror or exc}): expected a writable "
                             "directory", source=str(self.root)) from None
        return RunWriter(candidate, manifest, records, summary_name)

    def runs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if (p / "manifest.json").is_file())


def read_jsonl(path: Path) -> pd.DataFrame:
    rows = []
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        break  # a line cut short by a hard kill: everything before it is intact
    return pd.DataFrame(rows)


@dataclass
class Run:
    """A stored run. `manifest` and `summary` are the files as stored (plain JSON); `typed_manifest` and
    `typed_summary` are the same files read as their models."""

    directory: Path
    manifest: dict[str, Any]
    summary: dict[str, Any] | None
    requests: pd.DataFrame

    @cached_property
    def typed_manifest(self) -> RunManifest:
        return RunManifest.model_validate(self.manifest)

    @cached_property
    def typed_summary(self) -> RunSummary | None:
        return None if self.summary is None else RunSummary.model_validate(self.summary)

    @property
    def measured(self) -> pd.DataFrame:
        """Requests excluding warm-up."""
        if self.requests.empty:
            return self.requests
        return self.requests[~self.requests["warmup"].astype(bool)]


def _requests(directory: Path) -> pd.DataFrame:
    parquet = directory / "requests.parquet"
    return pd.read_parquet(parquet) if parquet.is_file() else read_jsonl(directory / "requests.jsonl")


def load_run(directory: str | Path) -> Run:
    """A stored run. A run of repeated replays (`replays/<run>` under it) reads as their records together, with a
    `replay` column (1, 2, ...); each replay's times count from its own start."""
    directory = Path(directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    summary_path = directory / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    requests = _requests(directory)
    if requests.empty and manifest.get("replays"):
        frames = [_requests(resolve_stored(rel, directory)).assign(replay=i)
                  for i, rel in enumerate(manifest["replays"], 1)]
        frames = [f for f in frames if not f.empty]
        if frames:
            requests = pd.concat(frames, ignore_index=True)
    return Run(directory, manifest, summary, requests)
