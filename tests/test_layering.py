"""Imports flow one way, down the pipeline: a package never imports from one that comes after it."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "infercost"
ORDER = ["errors", "redact", "provenance", "spec", "models", "workload", "engines", "preflight", "loadgen", "metrics", "store", "quality",
         "measure", "capacity", "cost", "projection", "search", "report", "cli_common", "cli_cost", "cli_project", "cli_search", "cli", "__main__"]


def _unit(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.suffix == ".py" else rel.stem


def test_imports_flow_down_the_pipeline():
    problems = []
    for path in SRC.rglob("*.py"):
        unit = _unit(path)
        if unit == "__init__" or unit not in ORDER:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("infercost"):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("infercost")]
            for name in names:
                parts = name.split(".")
                if len(parts) < 2:
                    continue
                target = parts[1]
                if target in ORDER and ORDER.index(target) > ORDER.index(unit):
                    problems.append(f"{path.relative_to(SRC)} imports {name}")
    assert not problems, problems
