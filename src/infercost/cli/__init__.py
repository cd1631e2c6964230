"""The command line: one module per group of commands, each a thin call of infercost.api."""

from infercost.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NOT_MET, EXIT_OK, EXIT_RUN_FAILED
from infercost.cli.main import build_parser, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_NOT_MET", "EXIT_OK", "EXIT_RUN_FAILED", "build_parser", "main"]
