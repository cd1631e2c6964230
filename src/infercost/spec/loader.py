"""YAML → validated spec, with every problem reported as one line: file, field, what was expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from infercost.errors import InputError
from infercost.spec.deployment import Deployment
from infercost.spec.workload import Workload

T = TypeVar("T")

_DEPLOYMENT = TypeAdapter(Deployment)

# Used when no deployment file is given: the bundled small model on vLLM; its KV cache is sized for the workload.
DEFAULT_DEPLOYMENT = {"model": "smollm2-135m-instruct", "engine": "vllm", "dtype": "float32",
                      "max_model_len": 2048, "max_num_seqs": 16}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", source=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise InputError(f"not valid YAML ({getattr(exc, 'problem', exc)})", source=str(path), field=where) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping at the top level", source=str(path))
    return data


def _field_path(loc: tuple[Any, ...], tags: set[str]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in tags or str(item).startswith(("function-", "union[", "str", "PromptItem")):
            continue  # pydantic's union branch names are not fields the user wrote
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _first_error(exc: ValidationError, source: str, tags: set[str]) -> InputError:
    errors = exc.errors(include_url=False)
    # Prefer the most specific error (deepest location), which is the one the user can act on.
    # Among union branches, a "wrong type" error is the branch the user did not mean.
    err = max(errors, key=lambda e: (len(e["loc"]), not e["type"].endswith("_type")))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; `infercost schema` lists the fields)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif "input" in err and err["type"] not in ("model_type",) and not isinstance(err["input"], (dict, list)):
        msg = f"{msg} (got {json.dumps(err['input'], default=str)})"
    loc = err["loc"]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        key = str(err["ctx"]["discriminator"]).strip("'")
        loc = (*loc, key)
        if err["type"] == "union_tag_invalid":
            msg = f"expected one of {err['ctx']['expected_tags']} (got {err['ctx']['tag']!r})"
        else:
            msg = "required field is missing"
    extra = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return InputError(msg + extra, source=source, field=_field_path(loc, tags))


def validate(model: type[T] | TypeAdapter, data: dict[str, Any], source: str) -> T:
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise _first_error(exc, source, {"vllm", "openai", "transformers", "inline", "jsonl", "synthetic"}) from None


def set_dotted(data: dict[str, Any], assignment: str, source: str) -> None:
    """Apply a CLI override `a.b.c=value`; the value is parsed as YAML (numbers, booleans, lists)."""
    if "=" not in assignment:
        raise InputError(f"override '{assignment}' must look like key=value", source=source)
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"cannot set '{key}': '{part}' is not a mapping", source=source)
    node[parts[-1]] = value


def load_spec_file(model: type[T], path: str | Path, overrides: list[str] = (), flag: str = "--set") -> T:
    """A spec from YAML with `flag KEY=VALUE` overrides; paths inside it resolve against the file's directory."""
    data = read_yaml(path)
    for item in overrides:
        set_dotted(data, item, source=flag)
    spec = validate(model, data, str(path))
    spec._source_dir = Path(path).resolve().parent
    return spec


def load_workload(path: str | Path, overrides: list[str] = ()) -> Workload:
    return load_spec_file(Workload, path, overrides, "--workload-set")


def load_deployment(path: str | Path | None, overrides: list[str] = (), default: dict | None = None) -> BaseModel:
    """A deployment from YAML, or `default` (the bundled CPU deployment unless given) when there is no file."""
    data = read_yaml(path) if path else dict(default or DEFAULT_DEPLOYMENT)
    for item in overrides:
        set_dotted(data, item, source="--set")
    return validate(_DEPLOYMENT, data, str(path) if path else "default deployment")


def deployment_adapter() -> TypeAdapter:
    return _DEPLOYMENT
