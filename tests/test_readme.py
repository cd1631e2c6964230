"""The command lines the README shows parse with the real CLI parser, so an example a reader copies does not fail
on its own syntax."""

import re
import shlex
from pathlib import Path

import pytest

from infercost.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[str]:
    """Each `infercost ...` line of a code block (continuations joined, comments dropped) and each inline synopsis
    with arguments (a bare `infercost cost` names the command), its optional [parts] included, `a|b` alternatives
    expanded and the numeric placeholder N made a number."""
    text = README.read_text()
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("infercost "):
                found.append(line.split(" #", 1)[0])
    found += [c for c in re.findall(r"`(infercost [^`]+)`", text) if len(c.split()) > 2]
    out = []
    for cmd in found:
        cmd = re.sub(r"\[([^\]]*)\]", r"\1", cmd).replace("...", "").replace("…", "").replace(" N ", " 2 ")
        alternatives = re.search(r"\S*\|\S*", cmd)
        if alternatives:
            out += [cmd.replace(alternatives.group(), alt) for alt in alternatives.group().split("|")]
        else:
            out.append(cmd)
    return sorted(set(out))


@pytest.mark.parametrize("command", _commands())
def test_readme_command_lines_parse(command, capsys):
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as exc:
        pytest.fail(f"{command!r}: {capsys.readouterr().err.strip().splitlines()[-1]} (exit {exc.code})")


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_python_examples_run(tmp_path):
    """The Python API examples that need no engine run as written (results redirected to a temporary folder); the
    one that measures here is compiled, its engine-backed calls being what test_engines_real.py runs."""
    import subprocess
    import sys

    blocks = _python_blocks()
    assert len(blocks) == 3
    compile(blocks[1], "README python block 2", "exec")
    root = README.parent
    for i in (0, 2):
        code = blocks[i].replace('"results', f'"{tmp_path}/results').replace(
            '"chat-support.yaml"', f'"{root / "workloads" / "chat-support.yaml"}"')
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"block {i + 1}: {proc.stderr[-2000:]}"
