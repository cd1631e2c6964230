"""YAML → validated spec, with every problem reported as one line: file, field, what was expected."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from infercost.errors import InputError
from infercost.redact import looks_like_secret, redact_text
from infercost.spec.deployment import Deployment
from infercost.spec.files import lone_surrogate, message_of, nearest, parse_yaml, printable, read_yaml_file
from infercost.spec.workload import Workload

T = TypeVar("T")

_SECRET_FIELDS = {"api_key_env", "headers"}  # fields whose wrong values may be the key itself: never echoed

_DEPLOYMENT = TypeAdapter(Deployment)

# Used when no deployment file is given: the bundled small model on vLLM; its KV cache is sized for the workload.
DEFAULT_DEPLOYMENT = {"model": "smollm2-135m-instruct", "engine": "vllm", "dtype": "float32",
                      "max_model_len": 2048, "max_num_seqs": 16}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML spec file as a mapping, within the size, depth and alias limits of infercost.spec.files."""
    data = read_yaml_file(path)
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
            parts.append(("." if parts else "") + printable(str(item)))
    return "".join(parts) or "(top level)"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The spec models a field can hold, through Optional, unions, Annotated, lists and dict values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _literal_values(model: type[BaseModel]) -> set[Any]:
    return {v for f in model.model_fields.values() if get_origin(f.annotation) is Literal
            for v in get_args(f.annotation)}


def fields_at(root: Any, loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at `loc` (pydantic's error location of a mapping), for "did you mean". Union
    branches are followed by their discriminator value or class name; list indexes and dict keys are passed."""
    models = _models_in(root)
    for part in loc:
        if isinstance(part, int):
            continue
        holding = [m for m in models if part in m.model_fields]
        if holding:
            models = [x for m in holding for x in _models_in(m.model_fields[part].annotation)]
            continue
        branch = [m for m in models if m.__name__ == part or part in _literal_values(m)]
        models = branch or models
    return sorted({name for m in models for name in m.model_fields})


def _unknown_field(err: dict, root: Any) -> tuple[str, str | None]:
    """The message for a key the model does not have, and the field it most likely meant."""
    fields = fields_at(root, err["loc"][:-1]) if root is not None else []
    guess = nearest(str(err["loc"][-1]), fields)
    if guess:
        return f"unknown field; did you mean '{guess}'?", guess
    if fields:
        return f"unknown field; expected one of: {', '.join(fields)}", None
    return "unknown field (check the spelling; `infercost schema` lists the fields)", None


def _is_branch(item: Any, tags: set[str]) -> bool:
    """Whether a location item is pydantic's label for a union branch (a tag, a type or class name), not a field:
    spec fields are snake_case."""
    return isinstance(item, str) and (item in tags or item[:1].isupper() or "[" in item
                                      or item in ("str", "int", "float", "bool", "none"))


def first_error(exc: ValidationError, source: str, tags: set[str], root: Any = None) -> InputError:
    """One line for a ValidationError; `root` (the model or type validated) lets a typo get a "did you mean"."""
    errors = exc.errors(include_url=False)
    # Prefer the most specific error (deepest location), which is the one the user can act on. At the same depth
    # an unknown field beats a missing one: a misspelt key shows up as both, and the spelling is the cause.
    # Among union branches, a "wrong type" error is the branch the user did not mean.
    err = max(errors, key=lambda e: (len(e["loc"]), e["type"] == "extra_forbidden", not e["type"].endswith("_type")))
    msg = err["msg"].removeprefix("Value error, ")
    others = len(errors) - 1
    if err["type"] == "extra_forbidden":
        msg, guess = _unknown_field(err, root)
        # The misspelt key also shows as the meant field missing: one mistake, not two.
        others -= any(e["type"] == "missing" and e["loc"] == (*err["loc"][:-1], guess) for e in errors)
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif "input" in err and err["type"] not in ("model_type",) and not isinstance(err["input"], (dict, list)):
        if _SECRET_FIELDS.intersection(map(str, err["loc"])) or looks_like_secret(err["input"]):
            msg = f"{msg} (value not shown: it may be a key)"  # never echo a key to the terminal
        else:
            msg = f"{msg} (got {redact_text(json.dumps(err['input'], default=str))})"  # no URL credentials
    loc = err["loc"]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        key = str(err["ctx"]["discriminator"]).strip("'")
        loc = (*loc, key)
        if err["type"] == "union_tag_invalid":
            msg = f"expected one of {err['ctx']['expected_tags']} (got {err['ctx']['tag']!r})"
        else:
            msg = "required field is missing"
    # A wrong-type error of another branch of a union that holds this error is the branch the user did not mean.
    others -= sum(e is not err and e["type"].endswith("_type") and _is_branch(e["loc"][-1], tags)
                  and len(e["loc"]) <= len(err["loc"]) and _is_branch(err["loc"][len(e["loc"]) - 1], tags)
                  and err["loc"][:len(e["loc"]) - 1] == e["loc"][:-1] for e in errors)
    msg = printable(" ".join(msg.split()))  # one line, whatever a validator put in its message
    if len(msg) > 300:
        msg = msg[:299] + "…"
    extra = f" (+{others} more)" if others else ""
    return InputError(msg + extra, source=source, field=_field_path(loc, tags))


def validate(model: type[T] | TypeAdapter, data: dict[str, Any], source: str) -> T:
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        root = Deployment if model is _DEPLOYMENT else model if isinstance(model, type) else None
        raise first_error(exc, source, {"vllm", "openai", "transformers", "inline", "jsonl", "synthetic"},
                           root) from None


_EXAMPLES = {"--set": "max_num_seqs=8", "--workload-set": "traffic.rate=4", "--study-set": "n_trials=10"}
_KEY_PATH = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*")


def set_dotted(data: dict[str, Any], assignment: str, source: str) -> str:
    """Apply a CLI override `a.b.c=value` (the value is parsed as YAML: numbers, booleans, lists) and return its
    key. Errors name the option (`source`, e.g. --set) and only the key: the value may be a secret."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    parts = [p.strip() for p in key.split(".")]
    example = f"{source} {_EXAMPLES.get(source, 'key=value')}"
    if not sep:
        got = f"'{key}'" if _KEY_PATH.fullmatch(key) and len(key) <= 80 else "an argument"
        raise InputError(f"expected KEY=VALUE, e.g. {example} ({got} has no '=')", source=source)
    if not all(parts):
        raise InputError(f"expected KEY=VALUE with a key like a.b.c, e.g. {example} (the key has an empty part)",
                         source=source)
    key = ".".join(parts)
    if lone_surrogate(raw):
        raise InputError("the value is not UTF-8 text", source=f"{source} {key}")
    try:
        value = parse_yaml(raw, source)
    except InputError:
        value = raw  # not YAML (or beyond its limits): the text itself
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            where = ".".join(parts[: depth + 1])
            raise InputError(f"cannot set it: '{where}' is a {type(node).__name__}, not a mapping",
                             source=f"{source} {key}")
    node[parts[-1]] = value
    return key


def _validate_overridden(model: Any, data: dict[str, Any], source: str, keys: list[str], flag: str):
    """validate(), except that an error inside a key set on the command line blames that option, not the file."""
    try:
        return validate(model, data, source)
    except InputError as exc:
        field = exc.field or ""
        key = next((k for k in reversed(keys) if field == k or field.startswith((k + ".", k + "["))), None)
        if key is None:
            raise
        raise InputError(message_of(exc), source=f"{flag} {key}", field=None if field == key else field) from None


def load_spec_file(model: type[T], path: str | Path, overrides: list[str] = (), flag: str = "--set") -> T:
    """A spec from YAML with `flag KEY=VALUE` overrides; paths inside it resolve against the file's directory."""
    data = read_yaml(path)
    keys = [set_dotted(data, item, source=flag) for item in overrides]
    spec = _validate_overridden(model, data, str(path), keys, flag)
    spec._source_dir = Path(path).resolve().parent
    return spec


def load_workload(path: str | Path, overrides: list[str] = ()) -> Workload:
    return load_spec_file(Workload, path, overrides, "--workload-set")


def load_deployment(path: str | Path | None, overrides: list[str] = (), default: dict | None = None) -> BaseModel:
    """A deployment from YAML, or `default` (the bundled CPU deployment unless given) when there is no file."""
    data = read_yaml(path) if path else dict(default or DEFAULT_DEPLOYMENT)
    keys = [set_dotted(data, item, source="--set") for item in overrides]
    return _validate_overridden(_DEPLOYMENT, data, str(path) if path else "default deployment", keys, "--set")


def deployment_adapter() -> TypeAdapter:
    return _DEPLOYMENT
