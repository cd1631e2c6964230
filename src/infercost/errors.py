"""Errors that end a command with one line for the user and exit status 2 (bad input), never a traceback."""

from __future__ import annotations


class InputError(Exception):
    """Bad user input: a spec file, a CLI value, a missing package. Printed as one line; exit status 2."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        parts = [p for p in (source, field) if p]
        super().__init__(": ".join([*parts, message]))


class EngineUnavailable(InputError):
    """An engine or bundled model cannot be used here (package missing, unsupported option)."""


class RunFailed(Exception):
    """A measurement that started and could not finish (the server failed requests, the engine died): printed as
    one line, exit status 3. What was measured before it is kept."""

    exit_code = 3
