"""Imports flow one way, down the pipeline, and only through public names. A unit (a package or a top-level module of
infercost) never imports from one that comes after it in ORDER, never reaches into another unit's private names or
private modules, and every unit is listed, so a new one cannot slip past the rule."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "infercost"
# "cli_*" are the command-line modules being folded into the `cli` package; either form is accepted meanwhile.
ORDER = ["errors", "redact", "provenance", "spec", "models", "workload", "engines", "preflight", "loadgen", "metrics",
         "store", "quality", "measure", "crosscheck", "capacity", "cost", "projection", "search", "report", "api",
         "cli_common", "cli_cost", "cli_project", "cli_search", "cli", "__main__"]


def _unit(path: Path) -> str:
    """The package or top-level module a source file belongs to; "__init__" for the root package itself."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _is_module(dotted: str) -> bool:
    path = SRC.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def _absolute(node: ast.ImportFrom, path: Path) -> str | None:
    """The module an ImportFrom names, with relative imports (`from .x import y`) made absolute."""
    if not node.level:
        return node.module
    package = list(path.relative_to(SRC.parent).with_suffix("").parts)
    package = package[: len(package) - node.level]
    return ".".join(package + ([node.module] if node.module else []))


def _imports(tree: ast.AST, path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, imported name or None) for every import of infercost in a file, inside functions too."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            if module and (module == "infercost" or module.startswith("infercost.")):
                out += [(node.lineno, module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, None) for alias in node.names if alias.name.startswith("infercost.")]
    return out


def _module_names(tree: ast.AST, path: Path) -> dict[str, str]:
    """Local names bound to infercost modules (`import infercost.a.b as m`, `from infercost.a import b`)."""
    bound = {"infercost": "infercost"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update({a.asname: a.name for a in node.names if a.asname and a.name.startswith("infercost.")})
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            for alias in node.names if module and module.startswith("infercost") else []:
                if _is_module(f"{module}.{alias.name}"):
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
    return bound


def _attribute_paths(tree: ast.AST, bound: dict[str, str]) -> list[tuple[int, str]]:
    """(line, dotted path) for attribute chains that start at a module of infercost: `infercost.a.b._x`."""
    out = []
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue  # only the outermost attribute of a chain
        parts, value = [], node
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound:
            out.append((node.lineno, ".".join([bound[value.id], *reversed(parts)])))
    return out


def _target(module: str, name: str | None) -> str | None:
    """The unit an import reaches: infercost.a.b -> a; `from infercost import a` -> a; the root's own names -> __init__."""
    parts = module.split(".")
    if len(parts) > 1:
        return parts[1]
    return name if name and _is_module(f"infercost.{name}") else "__init__"


def _private_part(dotted: str) -> str | None:
    return next((p for p in dotted.split(".")[1:] if _private(p)), None)


def test_every_unit_is_placed_in_the_pipeline():
    units = {_unit(p) for p in _sources()} - {"__init__"}
    missing = sorted(units - set(ORDER))
    assert not missing, (f"{', '.join(missing)} not in ORDER: add each to ORDER in tests/test_layering.py, after "
                         "every unit it imports from and before every unit that imports it")


def test_imports_flow_down_the_pipeline():
    problems = []
    for path in _sources():
        unit = _unit(path)
        if unit == "__init__" or unit not in ORDER:
            continue  # the root package forwards to the API lazily; an unlisted unit fails the test above
        for line, module, name in _imports(ast.parse(path.read_text()), path):
            target = _target(module, name)
            if target in ORDER and ORDER.index(target) > ORDER.index(unit):
                problems.append(f"{path.relative_to(SRC)}:{line} imports {module}{'.' + name if name else ''}")
    assert not problems, problems


def test_no_unit_reaches_into_another_units_private_names():
    problems = []
    for path in _sources():
        unit = _unit(path)
        tree = ast.parse(path.read_text())
        where = f"{path.relative_to(SRC)}"
        for line, module, name in _imports(tree, path):
            target = _target(module, name)
            if target == unit:
                continue
            dotted = f"{module}.{name}" if name and name != "*" else module
            private = _private_part(dotted)
            if private:
                problems.append(f"{where}:{line} imports {dotted}: {private} is private to infercost.{target}; make "
                                "it public there or keep the caller inside that unit")
        for line, dotted in _attribute_paths(tree, _module_names(tree, path)):
            parts = dotted.split(".")
            target = _target(".".join(parts[:2]), None) if len(parts) > 1 else unit
            if target == unit:
                continue
            private = _private_part(dotted)
            if private:
                problems.append(f"{where}:{line} uses {dotted}: {private} is private to infercost.{target}")
    assert not problems, "\n".join(problems)
