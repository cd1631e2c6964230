"""Secrets stop at the boundary. API keys come from the environment only; whatever is recorded (manifests, request
records, summaries, error lines on the terminal) goes through here first:

- a URL loses its `user:password@` and its query string (either can carry a credential);
- free text (an error body, a command line) loses the configured keys, `Bearer <token>`, `sk-...`-style keys,
  `api-key=<value>` pairs and URL credentials / query strings;
- a value that looks like a key is never echoed back in an error message.
"""

from __future__ import annotations

import re
import shlex
import sys
from typing import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

REDACTED = "<redacted>"

# Shapes of keys issued by common providers (OpenAI, Anthropic, Hugging Face, GitHub, GitLab, Slack, AWS, Google, JWTs).
_KEY_PREFIX = re.compile(
    r"^(sk-|sk_|pk_|rk_|hf_|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|xox[abprs]-|AIza|eyJ)[A-Za-z0-9_\-.]{8,}$"
    r"|^(AKIA|ASIA)[0-9A-Z]{16}$"
)
_KEY_IN_TEXT = re.compile(
    r"\b(?:sk-|sk_|pk_|rk_|hf_|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|xox[abprs]-|AIza)[A-Za-z0-9_\-]{12,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
)
_BEARER = re.compile(r"\b([Bb]earer|BEARER|Basic)\s+[A-Za-z0-9_\-.~+/=:]{8,}")
_KEY_PAIR = re.compile(
    r"""(["']?\b(?:x-)?(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|client[_-]?secret|secret[_-]?key"""
    r"""|password|passwd)["']?\s*[=:]\s*["']?)([^\s"'&,;}]{4,})""",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/\s@?#]*@")
_URL_QUERY = re.compile(r"\b((?:https?|wss?)://[^\s?#'\"<>]*)\?[^\s#'\"<>]*")


def looks_like_secret(value: object) -> bool:
    """True for a string shaped like an API key or token, rather than a name or a setting: a known provider prefix,
    `Bearer ...`, a run of 20+ letters and digits with no separator, or 32+ hex digits."""
    if not isinstance(value, str):
        return False
    v = value.strip()
    if not v:
        return False
    if _KEY_PREFIX.match(v) or _BEARER.match(v):
        return True
    if re.search(r"\s", v):
        return False
    for run in re.findall(r"[A-Za-z0-9]{20,}", v):  # names and settings are words joined by - _ . /; keys are not
        if any(c.isdigit() for c in run) and any(c.isalpha() for c in run):
            return True
    hexish = v.replace("-", "")
    if len(hexish) >= 32 and re.fullmatch(r"[0-9a-fA-F]+", hexish) and any(c.isdigit() for c in hexish):
        return True  # hex tokens, UUID-shaped keys
    return False


def redact_url(url: str) -> str:
    """The URL without `user:password@` and without its query string or fragment. A URL that cannot be parsed (a bad
    port, say) is redacted as text instead."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return _URL_QUERY.sub(r"\1", _URL_USERINFO.sub(r"\1", url))
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials (user, password, query values), so that an echo of them in an
    error body can be removed too."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        for piece in (parts.username, parts.password):
            if piece:
                found += [piece, unquote(piece)]
        for _, value in parse_qsl(parts.query, keep_blank_values=False):
            if len(value) >= 4:
                found.append(value)
    except ValueError:
        pass
    return [s for s in dict.fromkeys(found) if s]


def redact_text(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """`text` with every occurrence of `secrets` (the configured keys) and anything shaped like a key, a bearer token
    or URL credentials replaced by <redacted>."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL_QUERY.sub(rf"\1?{REDACTED}", text)
    text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _KEY_PAIR.sub(lambda m: m.group(1) + (m.group(2) if m.group(2) == REDACTED else REDACTED), text)
    text = _KEY_IN_TEXT.sub(REDACTED, text)
    return text


def redacted_command(argv: list[str] | None = None) -> str:
    """The command line as it is recorded in a manifest: an option value that is a URL, a key or `key=secret`
    loses the secret."""
    argv = sys.argv if argv is None else argv
    out = []
    for arg in argv:
        if looks_like_secret(arg) or looks_like_secret(arg.partition("=")[2]):
            arg = f"{arg.partition('=')[0]}={REDACTED}" if "=" in arg else REDACTED
        out.append(redact_text(arg) or arg)
    return " ".join(shlex.quote(a) if " " in a else a for a in out)


__all__ = ["REDACTED", "looks_like_secret", "redact_text", "redact_url", "redacted_command", "url_secrets"]
