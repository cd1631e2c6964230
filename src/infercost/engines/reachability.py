"""Whether an endpoint can be reached at all, asked before any work is sent to it: an unreachable endpoint is one
line ("connection refused at URL") for that candidate, not a batch of failed requests."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from infercost.redact import redact_url


def unreachable(base_url: str, timeout_s: float = 5.0) -> str | None:
    """Why a TCP connection to the URL's host and port cannot be opened, or None when it can."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = redact_url(base_url)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return f"connection refused at {shown}"
    except socket.gaierror:
        return f"cannot resolve {parts.hostname} ({shown})"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s at {shown}"
    except OSError as exc:
        return f"cannot connect to {shown}: {exc.strerror or exc}"
