"""Helpers shared by the command modules."""

from __future__ import annotations


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def engine_output_to_stderr():
    """Engines (vLLM and its worker processes) log to stdout; keep stdout for results (e.g. --json) by pointing
    file descriptor 1 at stderr while an engine runs."""
    from infercost.engines.logs import redirect_fds

    return redirect_fds(2, fds=(1,))
