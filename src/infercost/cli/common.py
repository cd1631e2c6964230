"""What every command shares: the parent parsers for common options, the console, and keeping stdout for results."""

from __future__ import annotations

import argparse
import os

from infercost.errors import InputError

# Exit status (README: "Exit codes"):
EXIT_OK = 0  # the command did what was asked and the targets it checks are met
EXIT_NOT_MET = 1  # the deployment cannot run here (infeasible), a target or error limit is not met
EXIT_BAD_INPUT = 2  # a spec, option or results directory is wrong: one line naming it, nothing run (InputError)
EXIT_RUN_FAILED = 3  # the run started and failed: every request failed, the server became unreachable, the results
#                      could not be written, or the load generator broke; the manifest says `failed` with the reason
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; what was measured is kept (status `interrupted`)


def parent(*groups: str) -> argparse.ArgumentParser:
    """A parent parser with the shared options named by `groups`: results, json, quiet, deployment, catalog, storage."""
    p = argparse.ArgumentParser(add_help=False)
    if "deployment" in groups:
        p.add_argument("--deployment", "-d", help="deployment YAML (default: bundled SmolLM2 on vLLM)")
        p.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE",
                       help="override a deployment field, e.g. --set max_num_seqs=8 (repeatable)")
        p.add_argument("--workload-set", "-w", action="append", default=[], metavar="KEY=VALUE",
                       help="override a workload field, e.g. -w traffic.rate=4 (repeatable)")
    if "storage" in groups:
        p.add_argument("--storage", help="SQLAlchemy URL (default: sqlite file under results/studies/)")
        p.add_argument("--study-name", help="name in the storage (default: the study's name)")
    if "catalog" in groups:
        p.add_argument("--catalog", "-c", action="append", help="extra CSV with offers or token prices (repeatable)")
    if "results" in groups:
        p.add_argument("--results-dir", default=os.environ.get("INFERCOST_RESULTS", "results"))
    if "quiet" in groups:
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    if "json" in groups:
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def engine_output_to_stderr():
    """Engines (vLLM and its worker processes) log to stdout; keep stdout for results (e.g. --json) by pointing
    file descriptor 1 at stderr while an engine runs."""
    from infercost.engines.logs import redirect_fds

    return redirect_fds(2, fds=(1,))


def one_line(text: str | None) -> str:
    return " ".join(str(text or "").split())


def positive_count(value: str | None, option: str) -> int | None:
    """A whole number above zero given on the command line; argparse's own error would print a usage block too."""
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        n = None
    if n is None or n <= 0:
        raise InputError(f"expected a whole number of at least 1 (got {value.strip()[:40]!r})", source=option)
    return n


def options_from(args: argparse.Namespace, model, names: tuple[str, ...]):
    """The options given on the command line (those left out keep the model's defaults), validated."""
    from infercost.spec.loader import validate

    return validate(model, {k: getattr(args, k) for k in names if getattr(args, k, None) is not None},
                    source="command line")
