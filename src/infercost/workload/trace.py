"""Production traces: when each request arrived and how long its input and output were. Three layouts: the Azure
LLM inference traces (CSV TIMESTAMP,ContextTokens,GeneratedTokens), Mooncake's JSONL (timestamp in ms,
input_length, output_length, hash_ids of 512-token blocks) and a plain CSV with named columns. A window of the
trace (start, duration) is cut, shifted to start at zero and compressed by the speed-up; a malformed row is one line
naming the file and the line. The file is streamed and reading stops past the window: a week-long trace is not read
whole to replay ten minutes of it."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from infercost.errors import InputError
from infercost.spec.files import MAX_PROMPTS, decode_utf8, exists
from infercost.spec.workload import TraceSpec

MAX_LINE_BYTES = 1 << 20
MAX_TRACE_REQUESTS = MAX_PROMPTS  # requests in one window
DISORDER_S = 60.0  # rows may be out of order by this much; reading stops once a row is this far past the window
_DATETIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


@dataclass
class Trace:
    """The window's requests, in arrival order: offsets in seconds from the window's start (after the speed-up)."""

    offsets_s: np.ndarray
    input_tokens: list[int]
    output_tokens: list[int]
    hash_ids: list[list[int]] | None = None
    sessions: list[str | None] | None = None
    source: str = ""
    rows_read: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_tokens)

    def mean_rate(self) -> float | None:
        """Requests per second over the window as replayed."""
        span = float(self.offsets_s[-1]) if len(self) > 1 else 0.0
        return (len(self) - 1) / span if span > 0 else None

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "requests": len(self), "rows_read": self.rows_read,
                "span_s": float(self.offsets_s[-1]) if len(self) else 0.0, "mean_rate_rps": self.mean_rate(),
                "prefix_blocks": self.hash_ids is not None, "notes": self.notes}


def timestamp_s(value: str) -> float:
    """Seconds from a number or a date-time such as the Azure traces' "2023-11-16 18:15:46.6805900" (more fractional
    digits than Python's parser takes; naive times are read as UTC)."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _DATETIME.match(text)
    if m is None:
        raise ValueError(f"expected seconds or a date-time like 2023-11-16 18:15:46.68, got {text[:40]!r}")
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    base = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), tzinfo=timezone.utc).timestamp()
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        base -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return base + (float(f"0.{frac}") if frac else 0.0)


def _count(value: Any, what: str) -> int:
    """A token count: a whole number of at least 1 (a trace row with 0 output tokens is served as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a whole number of tokens, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a whole number of tokens, got {str(value)[:40]!r}") from None
    if not math.isfinite(number) or number < 0 or number != int(number) or number > 1 << 24:
        raise ValueError(f"{what}: expected a whole number of tokens from 0 to {1 << 24:,}, got {str(value)[:40]!r}")
    return max(1, int(number))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    source = str(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read the trace ({exc.strerror})", source=source, field="traffic.trace.path") from None
    with fh:
        lineno = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise InputError("line longer than 1 MiB: not a trace row", source=source, field=f"line {lineno}")
            yield lineno, decode_utf8(raw, source, lineno).rstrip("\r\n")


def _csv_rows(path: Path, columns: dict[str, str | None]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {role: cell}) for each data row; `columns` maps a role to its header name (case-insensitive)."""
    lines = _lines(path)
    header_line = next(((n, t) for n, t in lines if t.strip()), None)
    if header_line is None:
        raise InputError("empty trace: expected a header row", source=str(path))
    header = [h.strip().lower() for h in next(csv.reader([header_line[1]]))]
    where: dict[str, int] = {}
    for role, name in columns.items():
        if name is None:
            continue
        if name.lower() not in header:
            raise InputError(f"no column {name!r} (the header has {', '.join(header[:12])})", source=str(path),
                             field="line 1")
        where[role] = header.index(name.lower())
    for lineno, text in lines:
        if not text.strip():
            continue
        try:
            cells = next(csv.reader([text]))
        except csv.Error as exc:
            raise InputError(f"not valid CSV ({exc})", source=str(path), field=f"line {lineno}") from None
        if len(cells) < len(header):
            raise InputError(f"{len(cells)} cells, the header has {len(header)}", source=str(path),
                             field=f"line {lineno}")
        yield lineno, {role: cells[i] for role, i in where.items()}


def _rows(spec: TraceSpec, path: Path) -> Iterator[tuple[int, float, int, int, list[int] | None, str | None]]:
    """(line, arrival seconds, input tokens, output tokens, hash ids, session) per row, in file order."""
    source = str(path)
    if spec.format == "mooncake":
        for lineno, text in _lines(path):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, got {type(row).__name__}")
                missing = [k for k in ("timestamp", "input_length", "output_length") if k not in row]
                if missing:
                    raise ValueError(f"missing {', '.join(missing)} (expected timestamp in ms, input_length, "
                                     "output_length, hash_ids)")
                ts = row["timestamp"]
                if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
                    raise ValueError(f"timestamp: expected milliseconds, got {str(ts)[:40]!r}")
                hashes = row.get("hash_ids")
                if hashes is not None and (not isinstance(hashes, list) or not all(
                        isinstance(h, int) and not isinstance(h, bool) for h in hashes)):
                    raise ValueError("hash_ids: expected a list of whole numbers")
                yield (lineno, ts / 1000.0, _count(row["input_length"], "input_length"),
                       _count(row["output_length"], "output_length"), hashes, None)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg} at column {exc.pos + 1})", source=source,
                                 field=f"line {lineno}") from None
            except (ValueError, RecursionError) as exc:
                raise InputError(str(exc), source=source, field=f"line {lineno}") from None
        return
    if spec.format == "azure":
        columns = {"arrival": "TIMESTAMP", "input": "ContextTokens", "output": "GeneratedTokens", "session": None}
        unit = 1.0
    else:
        c = spec.columns
        columns = {"arrival": c.arrival, "input": c.input_tokens, "output": c.output_tokens, "session": c.session_id}
        unit = 1e-3 if c.time_unit == "ms" else 1.0
    for lineno, row in _csv_rows(path, columns):
        try:
            try:  # a number is in the trace's unit; a date-time is read as such (matched once, not twice, per row)
                arrival = float(row["arrival"]) * unit
            except ValueError:
                arrival = timestamp_s(row["arrival"])
            if not math.isfinite(arrival):
                raise ValueError(f"{columns['arrival']}: expected a finite time, got {row['arrival'][:40]!r}")
            yield (lineno, arrival, _count(row["input"], columns["input"]), _count(row["output"], columns["output"]),
                   None, row.get("session"))
        except ValueError as exc:
            raise InputError(str(exc), source=source, field=f"line {lineno}") from None


def read_trace(spec: TraceSpec, base: Path | None = None) -> Trace:
    """The window of the trace, shifted to start at zero and compressed by `speed`."""
    path = Path(spec.path) if base is None or Path(spec.path).is_absolute() else base / spec.path
    if not exists(path):
        raise InputError("file not found", source=str(path), field="traffic.trace.path")
    if not path.is_file():
        raise InputError("expected a trace file, found a directory or device", source=str(path),
                         field="traffic.trace.path")
    end = spec.start_s + spec.duration_s if spec.duration_s is not None else math.inf
    first = None
    kept: list[tuple[float, int, int, list[int] | None, str | None]] = []
    rows = 0
    for lineno, arrival, n_in, n_out, hashes, session in _rows(spec, path):
        rows += 1
        first = arrival if first is None else first
        offset = arrival - first
        if offset < -DISORDER_S:
            raise InputError(f"arrives {-offset:.0f} s before the trace's first row: expected rows in time order",
                             source=str(path), field=f"line {lineno}")
        if offset > end + DISORDER_S:
            break
        if spec.start_s <= offset < end:
            kept.append((offset, n_in, n_out, hashes, session))
            if len(kept) > MAX_TRACE_REQUESTS:
                raise InputError(f"more than {MAX_TRACE_REQUESTS:,} requests in the window: choose a shorter "
                                 "traffic.trace.duration_s", source=str(path), field=f"line {lineno}")
    if not kept:
        where = f"from {spec.start_s:g} s" + (f" for {spec.duration_s:g} s" if spec.duration_s else "")
        raise InputError(f"no requests in the window ({where}; the trace has {rows:,} rows)", source=str(path),
                         field="traffic.trace")
    kept.sort(key=lambda r: r[0])
    offsets = (np.array([r[0] for r in kept]) - spec.start_s) / spec.speed
    traced_hashes = spec.format == "mooncake" and any(r[3] for r in kept)
    sessions = [r[4] for r in kept] if any(r[4] for r in kept) else None
    return Trace(offsets_s=offsets, input_tokens=[r[1] for r in kept], output_tokens=[r[2] for r in kept],
                 hash_ids=[list(r[3] or []) for r in kept] if traced_hashes else None, sessions=sessions,
                 source=f"{spec.format} trace {path.name}, window {spec.start_s:g}–"
                        f"{'end' if spec.duration_s is None else f'{end:g}'} s at speed {spec.speed:g}",
                 rows_read=rows)
