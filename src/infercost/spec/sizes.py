"""Memory sizes as users write them: `512MiB`, `2GiB`, `1.5GB`, a byte count, or `8192 tokens`."""

from __future__ import annotations

import math
import re
from typing import Literal

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|tokens?)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_kv_setting(value: str | int) -> tuple[Literal["auto", "bytes", "tokens"], int | None]:
    """`auto`, a byte count, `512MiB` / `2GiB` / `1.5GB`, or `8192 tokens`."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("expected auto, a size such as 512MiB or 2GiB, or a token count such as '8192 tokens'")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("expected a positive number of bytes")
        return "bytes", value
    if value.strip().lower() == "auto":
        return "auto", None
    m = _SIZE.match(value)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"expected auto, a size such as 512MiB or 2GiB, or a token count such as '8192 tokens' "
                         f"(got {value!r})")
    number, unit = float(m.group(1)), (m.group(2) or "b").lower()
    if unit.startswith("token"):
        return "tokens", math.ceil(number)
    return "bytes", math.ceil(number * _UNITS[unit])
