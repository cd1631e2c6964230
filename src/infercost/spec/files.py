"""The one place that reads the files users give (workloads, deployments, studies, on-prem servers, catalogs, prompt
files). Every limit here exists because a small file could otherwise exhaust the machine or end in a traceback:
a file over its size limit, YAML nested too deep (RecursionError) or an alias bomb (a 1 KB file that expands to
gigabytes once validated), a duplicate key (the last value silently won), bytes that are not UTF-8, or a JSON
escape that is half a character. Each is refused as one InputError line naming the file and line.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml
from yaml.constructor import ConstructorError

from infercost.errors import InputError

# Spec files are hand-written and a few KB; 1 MiB leaves room for long inline prompts yet parses in well under a
# second. Bigger prompt sets belong in a JSONL file.
MAX_YAML_BYTES = 1 << 20
# The deepest spec (a study's search space) nests about 5 levels; 64 is far above any real file and far below
# where parsers recurse out of stack.
MAX_YAML_DEPTH = 64
# Values (scalars, lists, mappings) once aliases are expanded: bounds what validation copies. A 1 MiB file
# without aliases holds about 75,000 one-line list items.
MAX_YAML_NODES = 100_000
# Prompt files are streamed line by line: one line may hold a long-context prompt (8 MiB is ~2M tokens); the reading
# stops at 256 MiB or 200,000 prompts (~0.6 KB of memory each), whichever comes first, unless prompts.limit stops
# it sooner.
MAX_JSONL_LINE_BYTES = 8 << 20
MAX_JSONL_BYTES = 256 << 20
MAX_PROMPTS = 200_000
# Price catalogs: the shipped ones are ~10 KB.
MAX_CSV_BYTES = 16 << 20

# What YAML 1.1 allows in a stream (the same set PyYAML's reader accepts); anything else is reported with its line.
_NOT_YAML_TEXT = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when present: ~10x faster


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def _snippet(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """`text` safe to print as part of one line: control characters (newlines, terminal escapes) from a user's
    keys or values become visible escapes such as \\x1b."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant (difflib ratio >= 0.6, case ignored), or None."""
    by_lower = {str(c).lower(): str(c) for c in candidates}
    match = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def message_of(exc: InputError) -> str:
    """The message of an InputError without its `source: field:` prefix, to re-attribute it elsewhere."""
    prefix = ": ".join(p for p in (exc.source, exc.field) if p)
    return str(exc).removeprefix(prefix + ": ") if prefix else str(exc)


def exists(path: Path) -> bool:
    """Path.exists() that answers False, instead of raising, for a name the OS refuses (too long, NUL byte)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _regular_file(path: Path, what: str, field: str | None) -> int:
    """The file's size; refuses what is absent, a directory, or unreadable, before anything is read."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"{what} not found", source=str(path), field=field) from None
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte in it, no permission
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"cannot read {what} ({reason})", source=printable(str(path))[:300], field=field) from None
    if path.is_dir():
        raise InputError(f"expected a {what}, found a directory", source=str(path), field=field)
    return info.st_size


def _too_big(what: str, size: int | None, limit: int, source: str, field: str | None, hint: str = "") -> InputError:
    got = f"{_mib(size)} is over" if size is not None else "over"
    return InputError(f"{got} the {_mib(limit)} limit for a {what}{hint}", source=source, field=field)


def decode_utf8(raw: bytes, source: str, first_line: int = 1) -> str:
    """Strict UTF-8 (a leading BOM is dropped); a bad byte is reported with its line and column."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + raw.count(b"\n", 0, exc.start)
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(f"expected UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8)",
                         source=source, field=f"line {line}") from None
    return text.removeprefix("\ufeff")


def read_text(path: str | Path, max_bytes: int, what: str = "file", field: str | None = None) -> str:
    """A whole file as UTF-8 text, refused before reading when it is over `max_bytes`."""
    path = Path(path)
    size = _regular_file(path, what, field)
    if size > max_bytes:
        raise _too_big(what, size, max_bytes, str(path), field)
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)  # bounded even if the file grows, or reports size 0 (/proc, pipes)
    except OSError as exc:
        raise InputError(f"cannot read {what} ({exc.strerror})", source=str(path), field=field) from None
    if len(raw) > max_bytes:
        raise _too_big(what, None, max_bytes, str(path), field)
    return decode_utf8(raw, str(path))


def lone_surrogate(value: Any) -> tuple[str, str] | None:
    """(where, escape) of the first string holding half a UTF-16 pair (JSON or YAML "\\ud83d"): it cannot be
    encoded as UTF-8, so it would fail later in a tokenizer or an HTTP body. Iterative: depth is not bounded here."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as exc:
                    return where or "(value)", f"\\u{ord(item[exc.start]):04x}"
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((f"{where}.{key}" if where else str(key), key))
                stack.append((f"{where}.{key}" if where else str(key), sub))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", sub) for i, sub in enumerate(item))
    return None


def _surrogate_message(escape: str) -> str:
    return f"{escape} is half of a character (a lone UTF-16 surrogate); expected UTF-8 text"


# ---------------------------------------------------------------------------------------------------------- YAML


class _Refused(ConstructorError):
    """A construction problem that is not a syntax error (duplicate key, bad value): reported as its own message."""


class _StrictLoader(_BASE_LOADER):
    """Safe YAML that refuses duplicate keys, reports unconvertible values (a 5,000-digit integer, month 13) with
    their line instead of a ValueError, and refuses lone surrogates from escapes."""

    def construct_object(self, node, deep=False):
        try:
            value = super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise _Refused(None, None, f"cannot read this value ({str(exc).split(':')[0]})", node.start_mark) from None
        if isinstance(value, str) and not value.isascii():
            bad = lone_surrogate(value)
            if bad:
                raise _Refused(None, None, _surrogate_message(bad[1]), node.start_mark)
        return value

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` merges are meant to be overridden
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not key_node:
                    raise _Refused(None, None, f"duplicate key {_snippet(key)} (first on line "
                                   f"{first.start_mark.line + 1}); each key may appear once", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _check_structure(text: str, source: str) -> None:
    """Depth and alias expansion, from the event stream (no recursion, nothing built): each alias counts as the
    whole node it repeats, so an alias bomb is refused after reading a few hundred bytes."""
    sizes: dict[str, int] = {}  # anchor -> values it expands to
    open_nodes: list[list] = []  # [anchor, values so far] per open list or mapping
    expanded = 0
    for event in yaml.parse(text, Loader=_BASE_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([event.anchor, 1])
            if len(open_nodes) > MAX_YAML_DEPTH:
                raise InputError(f"nested more than {MAX_YAML_DEPTH} levels deep (the limit for a YAML file)",
                                 source=source, field=f"line {event.start_mark.line + 1}")
            size = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = size
            if open_nodes:
                open_nodes[-1][1] += size
            continue
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                raise InputError(f"alias *{event.anchor} is inside the node it names (a cycle)", source=source,
                                 field=f"line {event.start_mark.line + 1}")
            if event.anchor not in sizes:
                continue  # undefined: the composer reports it with its line
            size = sizes[event.anchor]
        else:
            continue
        expanded += size
        if not isinstance(event, yaml.CollectionStartEvent) and open_nodes:
            open_nodes[-1][1] += size
        if expanded > MAX_YAML_NODES:
            raise InputError(f"more than {MAX_YAML_NODES:,} values once aliases are expanded (the limit for a YAML "
                             "file; put large prompt sets in a JSONL file)", source=source,
                             field=f"line {event.start_mark.line + 1}")


def _yaml_error(exc: yaml.YAMLError, source: str, text: str) -> InputError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        return InputError(f"not valid YAML ({exc.reason})", source=source, field=f"line {line}")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}" if mark else None
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    if isinstance(exc, _Refused):
        return InputError(problem, source=source, field=where)
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark and mark and cmark.line != mark.line:
        problem = f"{' '.join(str(context).split())} (line {cmark.line + 1}): {problem}"
    return InputError(f"not valid YAML ({problem})", source=source, field=where)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text → Python values, within MAX_YAML_DEPTH and MAX_YAML_NODES, refusing duplicate keys and
    characters YAML does not allow. Size is the caller's check (read_text)."""
    bad = _NOT_YAML_TEXT.search(text)
    if bad:
        char = bad.group()
        what = _surrogate_message(f"\\u{ord(char):04x}") if 0xD800 <= ord(char) <= 0xDFFF else \
            f"character U+{ord(char):04X} is not allowed in YAML (a control character)"
        raise InputError(what, source=source, field=f"line {text.count(chr(10), 0, bad.start()) + 1}")
    try:
        _check_structure(text, source)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, text) from None
    except RecursionError:  # unreachable within MAX_YAML_DEPTH; kept so no parser path can end in a traceback
        raise InputError(f"nested too deeply (the limit is {MAX_YAML_DEPTH} levels)", source=source) from None


def read_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """A YAML file within every limit above."""
    return parse_yaml(read_text(path, MAX_YAML_BYTES, what), str(path))


# --------------------------------------------------------------------------------------------------------- JSONL


def read_jsonl(path: str | Path, *, field: str | None = None, bounded: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) for each non-blank line of a UTF-8 JSONL file, streamed. `bounded` says the caller
    stops early (prompts.limit), so a file bigger than MAX_JSONL_BYTES may be read from its start."""
    path = Path(path)
    source = str(path)
    size = _regular_file(path, "prompts file", field)
    hint = " (set prompts.limit to read only the first prompts)"
    if size > MAX_JSONL_BYTES and not bounded:
        raise _too_big("prompts file", size, MAX_JSONL_BYTES, source, field, hint)
    total = 0
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read prompts file ({exc.strerror})", source=source, field=field) from None
    with fh:
        lineno = 0
        while True:
            raw = fh.readline(MAX_JSONL_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            total += len(raw)
            if len(raw) > MAX_JSONL_LINE_BYTES:
                raise InputError(f"line longer than the {_mib(MAX_JSONL_LINE_BYTES)} limit", source=source,
                                 field=f"line {lineno}")
            if total > MAX_JSONL_BYTES:
                raise _too_big("prompts file", None, MAX_JSONL_BYTES, source, f"line {lineno}", hint)
            text = decode_utf8(raw, source, lineno).rstrip("\r\n")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg} at column {exc.pos + 1})", source=source,
                                 field=f"line {lineno}") from None
            except ValueError as exc:  # e.g. an integer of more than 4,300 digits
                raise InputError(f"not valid JSON ({str(exc).split(':')[0]})", source=source,
                                 field=f"line {lineno}") from None
            except RecursionError:
                raise InputError("not valid JSON (nested too deeply)", source=source, field=f"line {lineno}") from None
            if "\\u" in text:
                bad = lone_surrogate(value)
                if bad:
                    raise InputError(_surrogate_message(bad[1]), source=source, field=f"line {lineno}: {bad[0]}")
            yield lineno, value
