"""Engine output captured to a log file, and the engine's own reason for a failure found in it. vLLM reports start-up
failures from its worker processes only in their logs ("See root cause above"), so the log is where the reason is."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Iterator

_ERROR = re.compile(r"\b([A-Za-z_.]*(?:Error|Exception)): (.+)$")
_GENERIC = ("See stack trace", "See root cause", "initialization failed")


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Point file descriptors 1 and 2 at `path` while an engine starts: the processes it spawns inherit them and keep
    logging there for their whole life; this process gets its own descriptors back afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for x in (fd, *saved):
            os.close(x)


def root_error(path: Path, limit: int = 400) -> str | None:
    """The first specific `SomeError: message` line in the log (the original failure, not its re-raises)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        match = _ERROR.search(line)
        if match and not any(g in match.group(2) for g in _GENERIC):
            return f"{match.group(1)}: {match.group(2).strip()}"[:limit]
    return None
