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
def redirect_fds(target: int, fds: tuple[int, ...] = (1, 2)) -> Iterator[None]:
    """Point file descriptors `fds` at descriptor `target`; processes spawned meanwhile inherit that and keep it for
    their whole life, while this process gets its own descriptors back afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        for fd in fds:
            os.dup2(target, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's and its children's output (descriptors 1 and 2) to `path` while an engine starts."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        with redirect_fds(fd):
            yield
    finally:
        os.close(fd)


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
