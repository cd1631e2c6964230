"""Random mutations of the shipped workload, deployment, study and prompt files, and the property they must keep:
loading a mutated file the way `infercost validate` does ends in a spec or in one InputError line, never another
exception, a hang or memory over a bound. Shared by tests/test_input_hardening.py (a few seconds) and
benchmarks/test_input_fuzz.py (the long run)."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

from hypothesis import strategies as st

from infercost.api import study_of
from infercost.api import study_workload
from infercost.errors import InputError
from infercost.spec import load_deployment, load_workload
from infercost.workload import build_requests

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ROOT / "workloads"
YAML_FILES = sorted(p.relative_to(WORKLOADS) for p in WORKLOADS.rglob("*.yaml"))
JSONL_FILES = sorted(p.relative_to(WORKLOADS) for p in (WORKLOADS / "data").glob("*.jsonl"))
TRACE_FILES = sorted(p.relative_to(WORKLOADS) for p in (WORKLOADS / "data").glob("*.csv"))  # traffic traces
CONVERSATION_FILES = sorted(p.relative_to(WORKLOADS) for p in (WORKLOADS / "data").glob("*.json"))  # ShareGPT
ALL_FILES = YAML_FILES + JSONL_FILES + TRACE_FILES + CONVERSATION_FILES
# Python memory allocated while loading one file (tracemalloc peak). Each shipped file takes about 1 MB once the
# modules are imported; an alias bomb or a runaway synthetic count takes from tens of MB to gigabytes.
MEMORY_LIMIT = 32 << 20

# A self-contained alias bomb: 300 bytes that expand to 10^7 values.
_BOMB = b"[&a [x, x, x, x, x, x, x, x, x, x]" + b"".join(
    b", &" + cur + b" [" + b", ".join([b"*" + prev] * 10) + b"]"
    for prev, cur in zip([b"a", b"b", b"c", b"d", b"e", b"f"], [b"b", b"c", b"d", b"e", b"f", b"g"])) + b"]"

# Fragments that break YAML and JSON in the ways the input layer guards against: aliases and cycles, nesting,
# merge keys, unsafe tags, control characters, bytes that are not UTF-8, half a surrogate pair, huge numbers, bad
# dates, extra documents, duplicate keys, lines without prompt or messages.
FRAGMENTS = [
    b"&a ", b"*a", b"&b [*a, *a, *a, *a, *a, *a, *a, *a]", b"&c [*b, *b, *b, *b, *b, *b, *b, *b]", b"&d [*d]",
    b"[", b"]", b"{", b"}", b"[" * 80, b"- " * 70, b"{a: " * 70, b": ", b"- ", b"\n", b"\n  ", b"\t", b"\r",
    b"<<: *a\n", b"!!python/object/apply:os.system ['true'] ", b"!!binary aGk= ", b"\x00", b"\x1b", b"\\ud83d",
    b'"\\ud83d"', b"\xe9", b"\xff\xfe", b"\xed\xa0\xbd", b"\xef\xbb\xbf", b"1" * 5000, b"999999999999999999999",
    b"1e999", b".inf", b"-.nan", b"2020-13-45", b"null", b"~", b"---\n", b"...\n", b"? ", b"|\n", b">-\n", b"'",
    b'"', b"\\", b"%YAML 1.1\n", b"name: dup\n", b'{"prompt": ', b'{"reference": "x"}\n', b'{"promt": "x"}\n',
    b'"messages": [{"role": "user"}]', b'[{"prompt": "x"}]\n', b"count: 99999999\n", b"mean: 999999999999\n",
    _BOMB, b"{k: " + _BOMB + b"}",
]

# Whole `key: value` lines, inserted with the indentation of the line they go before so they land in its mapping
# (tags and a study's `fixed` accept any key: there an alias bomb reaches validation and the manifest).
KEY_LINES = [b"extra: " + _BOMB, b"name: dup", b"deep: " + b"[" * 80 + b"]" * 80, b"<<: {merged: 1}",
             b"cycle: &z [*z]", b"big: " + b"1" * 5000, b"text: \"\\ud83d\"", b"bad: \x1b\xe9"]


@st.composite
def mutated(draw, pool: list[Path]) -> tuple[Path, bytes]:
    """(shipped file, its bytes after 1-4 random insertions, deletions, repeats, byte flips, duplicated lines, new
    key lines or values replaced by a fragment)."""
    rel = draw(st.sampled_from(pool))
    data = bytearray((WORKLOADS / rel).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "repeat", "byte", "line", "value", "key", "key"]))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[at:at] = draw(st.sampled_from(FRAGMENTS) | st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 256))] * draw(st.integers(1, 40))
        elif kind == "byte" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "line":
            lines = bytes(data).split(b"\n")
            k = draw(st.integers(0, len(lines) - 1))
            lines.insert(k, lines[k])
            data = bytearray(b"\n".join(lines))
        elif kind == "key":
            lines = bytes(data).split(b"\n")
            k = draw(st.integers(0, len(lines) - 1))
            indent = lines[k][:len(lines[k]) - len(lines[k].lstrip(b" "))]
            lines.insert(k, indent + draw(st.sampled_from(KEY_LINES)))
            data = bytearray(b"\n".join(lines))
        elif kind == "value":  # `key: value` → `key: <fragment>`, so a fragment lands where a spec expects a value
            lines = bytes(data).split(b"\n")
            k = draw(st.integers(0, len(lines) - 1))
            if b": " in lines[k]:
                lines[k] = lines[k].split(b": ", 1)[0] + b": " + draw(st.sampled_from(FRAGMENTS))
            data = bytearray(b"\n".join(lines))
    return rel, bytes(data)


def copy_workloads(into: Path) -> Path:
    """A copy of workloads/ to write mutated files into, so relative paths (studies → workload → data) resolve.
    Each shipped file is loaded once here, so the modules it imports are not counted against MEMORY_LIMIT."""
    root = Path(shutil.copytree(WORKLOADS, into / "workloads"))
    for rel in ALL_FILES:
        _load(root, rel, (WORKLOADS / rel).read_bytes())
    return root


def _load(root: Path, rel: Path, data: bytes) -> None:
    """Load as `validate` does, then serialise the spec as `run` does for its manifest (where an alias bomb that
    validation passed used to expand to gigabytes)."""
    target = root / rel.parent / f"_fuzz{rel.suffix}"
    target.write_bytes(data)
    if rel.suffix == ".csv":  # a trace: read as an Azure-layout trace by a workload that replays it
        workload = root / "_fuzz_trace.yaml"
        workload.write_text(f"name: fuzz\napi: completion\ntraffic: {{arrival: trace, trace: {{path: "
                            f"{target.relative_to(root)}, format: azure, duration_s: 30}}}}\n")
        build_requests(load_workload(workload))
    elif rel.suffix == ".json":  # conversations: read as multi-turn sessions and as a ShareGPT dataset
        for prompts in (f"{{source: sessions, path: {target.relative_to(root)}}}",
                        f"{{source: dataset, format: sharegpt, path: {target.relative_to(root)}}}"):
            workload = root / "_fuzz_conversations.yaml"
            workload.write_text(f"name: fuzz\nprompts: {prompts}\ntraffic: {{rate: 1, num_requests: 1}}\n")
            build_requests(load_workload(workload))
    elif rel.suffix == ".jsonl":
        workload = root / "_fuzz_prompts.yaml"
        workload.write_text(f"name: fuzz\nprompts: {{source: jsonl, path: {target.relative_to(root)}}}\n"
                            "traffic: {rate: 1, num_requests: 1}\n")
        build_requests(load_workload(workload))
    elif rel.parts[0] == "deployments":
        load_deployment(target).model_dump_json()
    elif rel.parts[0] == "studies":
        spec = study_of(str(target))
        build_requests(study_workload(spec, str(target)))
        spec.model_dump_json()
    else:
        workload = load_workload(target)
        build_requests(workload)
        workload.model_dump_json()


def check(root: Path, rel: Path, data: bytes) -> str:
    """Load one mutated file; 'ok' or 'input error'. Any other exception propagates (the fuzz test fails on it);
    an InputError must be one non-empty line, and the Python memory allocated must stay under MEMORY_LIMIT."""
    tracemalloc.start()
    try:
        _load(root, rel, data)
        outcome = "ok"
    except InputError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        outcome = "input error"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{rel}: {peak / 2**20:.0f} MiB allocated"
    return outcome
