"""The `infercost` command: parses arguments, calls the Python API (infercost.api) and prints. Bad input ends with
one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from infercost import __version__
from infercost.cli import cost, crosscheck, inspect, measuring, project, search
from infercost.cli.common import EXIT_INTERRUPTED, EXIT_RUN_FAILED
from infercost.errors import InputError, RunFailed

DESCRIPTION = "infercost: the cheapest way to serve an LLM workload within its latency and quality targets."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infercost", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"infercost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (measuring, crosscheck, cost, project, search, inspect):  # the order of `infercost --help`
        commands.add_parsers(sub)
    return parser


def _terminate(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # No model hub is reachable on many serving hosts; never wait on one. Users can override.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    # SIGTERM (a scheduler, `kill`) ends a command like Ctrl-C: engines and their worker processes are stopped and
    # what was measured is kept, instead of leaving orphaned engine processes holding memory.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except InputError as exc:
        from infercost.redact import redact_text

        print(f"infercost: error: {redact_text(str(exc))}", file=sys.stderr)  # never a key or URL credential
        return exc.exit_code
    except RunFailed as exc:
        from infercost.redact import redact_text

        print(f"infercost: failed: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        print("infercost: interrupted; what was measured so far is kept in the results directory", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        from infercost.store.runs import ResultsWriteError

        if not isinstance(exc, ResultsWriteError):
            raise
        print(f"infercost: writing results failed: {exc}; what was written so far is kept", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
