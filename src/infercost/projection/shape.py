"""A model's shape from its HF `config.json`: what the step-time model needs (parameters read per token, KV bytes
per token, FLOPs per token). Parameters are counted from the shape, so a config alone (no weights) is enough to
project a model that is not at hand."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from infercost.engines.memory import BYTES_PER_WEIGHT
from infercost.engines.memory import KV_BYTES as _KV_BYTES
from infercost.errors import InputError

# One table of bytes per weight and per KV element, shared with the engines' memory preflight.
KV_BYTES: dict[str, float | None] = {"auto": None, **{k: float(v) for k, v in _KV_BYTES.items()}}


class ModelShape(BaseModel):
    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    experts: int = 1  # MoE: experts per layer
    experts_per_token: int = 1
    tied_embeddings: bool = False
    source: str | None = None

    @property
    def attention_params(self) -> int:
        q_out = self.heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        return self.hidden * q_out + 2 * self.hidden * kv_out + q_out * self.hidden

    @property
    def mlp_params(self) -> int:
        return 3 * self.hidden * self.intermediate  # gate, up, down (SwiGLU)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def params(self) -> int:
        per_layer = self.attention_params + self.experts * self.mlp_params + 2 * self.hidden
        return self.layers * per_layer + self.embedding_params + self.hidden

    @property
    def active_params(self) -> int:
        """Parameters used per token (MoE: only the routed experts); the LM head counts, the embedding lookup not."""
        per_layer = self.attention_params + self.experts_per_token * self.mlp_params
        return self.layers * per_layer + self.vocab * self.hidden

    def weight_bytes(self, quantization: str = "bfloat16") -> float:
        bpw = bytes_per_weight(quantization)
        embed_bpw = max(bpw, 2.0) if bpw < 2 else bpw  # embeddings stay 16-bit under weight-only quantisation
        return (self.params - self.embedding_params) * bpw + self.embedding_params * embed_bpw

    def kv_bytes_per_token(self, kv_dtype_bytes: float) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_dtype_bytes

    def attention_flops_per_token(self, context: float) -> float:
        """QK^T and AV for one new token attending to `context` earlier tokens: 4 x layers x heads x head_dim x ctx."""
        return 4.0 * self.layers * self.heads * self.head_dim * context


def bytes_per_weight(quantization: str | None) -> float:
    q = quantization or "bfloat16"
    if q not in BYTES_PER_WEIGHT:
        raise InputError(f"unknown precision or quantisation {q!r}: expected one of {', '.join(BYTES_PER_WEIGHT)}",
                         field="quantization")
    return BYTES_PER_WEIGHT[q]


def shape_from_config(cfg: dict, name: str, source: str | None = None) -> ModelShape:
    cfg = cfg.get("text_config", cfg)
    try:
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        return ModelShape(
            name=name, layers=int(cfg["num_hidden_layers"]), hidden=hidden,
            intermediate=int(cfg.get("intermediate_size") or cfg.get("moe_intermediate_size") or 4 * hidden),
            heads=heads, kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads), vocab=int(cfg["vocab_size"]),
            experts=int(cfg.get("num_local_experts") or cfg.get("num_experts") or 1),
            experts_per_token=int(cfg.get("num_experts_per_tok") or 1),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)), source=source or cfg.get("_source"),
        )
    except KeyError as exc:
        raise InputError(f"config.json lacks {exc.args[0]!r}", source=source or name) from None


def presets() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in (resources.files("infercost.projection") / "data" /
                                                          "models").iterdir() if p.name.endswith(".json"))


def load_shape(model: str) -> ModelShape:
    """A shape from a shipped preset (llama-3.1-8b, ...), a config.json or model directory, or a bundled alias."""
    preset = resources.files("infercost.projection") / "data" / "models" / f"{model}.json"
    if preset.is_file():
        return shape_from_config(json.loads(preset.read_text()), model)
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        return shape_from_config(json.loads(path.read_text()), model, str(path))
    from infercost.models.bundled import BUNDLED, resolve_model

    if model in BUNDLED:
        return shape_from_config(json.loads((Path(resolve_model(model)) / "config.json").read_text()), model,
                                 f"bundled {model}")
    raise InputError(f"unknown model {model!r}: expected a preset ({', '.join(presets())}), a bundled alias, or a "
                     f"directory with config.json", field="model")
