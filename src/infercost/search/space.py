"""The search space as Optuna sees it. Conditional parameters get their own names per branch (an engine's precisions,
vLLM's KV-cache dtype), so each sampler models them apart. `enumerate_space` lists every configuration, for the grid
sampler and for exhaustive checks. Given what the catalog offers (`Offered`), the space holds only placements it
prices: a configuration without an offer would use a trial to learn only that."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Callable

import optuna
from pydantic import BaseModel

from infercost.errors import InputError
from infercost.search.spec import API_PREFIX, PROJECTED_ENGINES, IntRange, SearchSpace, StudySpec
from infercost.spec.vocabulary import CONCRETE_DTYPES


class TrialConfig(BaseModel):
    model: str
    engine: str
    precision: str
    max_num_seqs: int
    max_num_batched_tokens: int | None = None
    enable_prefix_caching: bool = True
    kv_cache_dtype: str = "auto"
    hardware: str = "here"
    devices: int = 1
    pricing: str = "on_demand"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def is_api(self) -> bool:
        """A hosted model bought per token (`model` is vendor/model), not a deployment of ours."""
        return self.engine == API_PREFIX

    @classmethod
    def for_api(cls, name: str) -> "TrialConfig":
        return cls(model=name, engine=API_PREFIX, precision="as served", max_num_seqs=1, hardware=API_PREFIX,
                   pricing="per_token")

    def label(self) -> str:
        if self.is_api:
            return f"{self.model} API (per token)"
        where = "here" if self.hardware == "here" else f"{self.devices}x {self.hardware}"
        return (f"{self.model} {self.engine} {self.precision} seqs={self.max_num_seqs}"
                f"{' prefix-cache' if self.enable_prefix_caching else ''}"
                f"{'' if self.kv_cache_dtype == 'auto' else ' kv=' + self.kv_cache_dtype} on {where} "
                f"{self.pricing.replace('_', ' ')}")

    def deployment(self, fixed: dict[str, Any]) -> dict[str, Any]:
        """The deployment mapping for this configuration (validated by the caller like any deployment file)."""
        d: dict[str, Any] = {"engine": self.engine, "model": self.model, "max_num_seqs": self.max_num_seqs,
                             "enable_prefix_caching": self.enable_prefix_caching}
        if self.engine == "vllm":
            if self.precision in CONCRETE_DTYPES:
                d["dtype"] = self.precision
            else:
                d["quantization"] = self.precision
            d["kv_cache_dtype"] = self.kv_cache_dtype
            if self.max_num_batched_tokens:
                d["max_num_batched_tokens"] = self.max_num_batched_tokens
            if self.devices > 1:
                d["tensor_parallel_size"] = self.devices
        else:
            d["quantization"] = self.precision
        allowed = _ENGINE_FIELDS[self.engine]
        d.update({k: v for k, v in fixed.items() if k in allowed and k not in d})
        return d


_ENGINE_FIELDS = {
    "vllm": {"dtype", "kv_cache_memory", "gpu_memory_utilization", "max_model_len", "enforce_eager", "seed", "engine_args",
             "max_num_batched_tokens"},
    "transformers": {"dtype", "device", "prefix_cache_mb"},
}


def hardware_for(engine: str, hardware: list[str]) -> list[str]:
    """Placements an engine can have: projection models vLLM's continuous batching, so other engines are only
    measured here. The space is conditional rather than full of combinations the search would reject; for the same
    reason this machine is priced once, by the first pricing model listed (it is the machine at hand, not an offer
    bought on several terms)."""
    return hardware if engine in PROJECTED_ENGINES else [h for h in hardware if h == "here"]


def _seqs_values(space: SearchSpace) -> list[int]:
    if isinstance(space.max_num_seqs, IntRange):
        r = space.max_num_seqs
        values, v = [], r.low
        while v <= r.high:  # powers of two within the range for enumeration
            values.append(v)
            v *= 2
        return values if values[-1] == r.high else values + [r.high]
    return list(space.max_num_seqs)


def engine_choices(space: SearchSpace) -> list[str]:
    """The engines, and "api" when hosted models compete: one categorical, so a sampler weighs building against
    buying like any other choice (a study without APIs keeps the distribution it always had)."""
    return [*space.engines, API_PREFIX] if space.apis else list(space.engines)


Offered = Callable[[str, int], list[str]]  # (hardware, devices) -> the pricing models the catalog prices it under


@dataclass(frozen=True)
class Placing:
    """The placements the space holds: the accelerators with some offer, each with its device counts that have one,
    each of those with its pricing models that do (this machine: one, see `hardware_for`)."""

    hardware: list[str]
    devices: dict[str, list[int]]
    pricing: dict[tuple[str, int], list[str]]


def placing(spec: StudySpec, offered: Offered | None = None, source: str | None = None) -> Placing:
    """The study's placements as the catalog offers them (`offered` None: all of them, unpriced or not). A study
    none of whose accelerators has an offer is a one-line error naming `source` (default: the study's name)."""
    p = spec.space.placements
    devices: dict[str, list[int]] = {}
    pricing: dict[tuple[str, int], list[str]] = {}
    for hardware in p.hardware:
        for count in ([1] if hardware == "here" else p.devices):
            terms = [p.pricing[0]] if hardware == "here" else list(p.pricing) if offered is None else \
                [t for t in p.pricing if t in offered(hardware, count)]
            if terms:
                devices.setdefault(hardware, []).append(count)
                pricing[(hardware, count)] = terms
    accelerators = [h for h in p.hardware if h != "here"]
    if accelerators and not any(h in devices for h in accelerators):
        within = "".join(f" {word} {_or(v)}" for word, v in (("from", p.providers), ("in", p.regions)) if v)
        raise InputError(f"no catalog offer prices {', '.join(accelerators)} on {_or(p.pricing)} terms with "
                         f"{_or(p.devices)} device(s){within}: expected accelerators the catalog sells (see "
                         "`infercost catalog list`)", source=source or spec.name, field="space.placements")
    return Placing([h for h in p.hardware if h in devices], devices, pricing)


def _or(values: list[Any]) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def _name(name: str, choices: list[Any], full: list[Any]) -> str:
    """A placement parameter's name: its own while its choices are the study's, else named after them. Optuna keeps
    one distribution per name, and a seeded study of an unpruned space draws what it drew before."""
    return name if list(choices) == list(full) else f"{name}[{','.join(map(str, choices))}]"


def suggest(trial: optuna.Trial, spec: StudySpec, offered: Offered | None = None) -> TrialConfig:
    s, p = spec.space, spec.space.placements
    # `model` first, as always: a seed draws what it drew before. An API trial leaves it unused, so one API is
    # proposed under several parameter sets; the study answers each after the first from its outcome.
    model = trial.suggest_categorical("model", s.models)
    engine = trial.suggest_categorical("engine", engine_choices(s))
    if engine == API_PREFIX:  # the API's own model is the next choice
        return TrialConfig.for_api(trial.suggest_categorical("api", [a.name for a in s.apis]))
    precision = trial.suggest_categorical(f"precision_{engine}", s.precisions_for(engine))
    if isinstance(s.max_num_seqs, IntRange):
        seqs = trial.suggest_int("max_num_seqs", s.max_num_seqs.low, s.max_num_seqs.high, log=s.max_num_seqs.log)
    else:
        seqs = trial.suggest_categorical("max_num_seqs", list(s.max_num_seqs))
    prefix = trial.suggest_categorical("enable_prefix_caching", s.enable_prefix_caching)
    mnbt, kv = None, "auto"
    if engine == "vllm":
        mnbt = trial.suggest_categorical("vllm_max_num_batched_tokens", s.max_num_batched_tokens)
        kv = trial.suggest_categorical("vllm_kv_cache_dtype", s.kv_cache_dtype)
    where = placing(spec, offered)
    hardware, devices, pricing = "here", 1, p.pricing[0]
    if engine in PROJECTED_ENGINES:
        hardware = trial.suggest_categorical(_name("hardware", where.hardware, p.hardware), where.hardware)
    if hardware != "here":
        counts = where.devices[hardware]
        devices = trial.suggest_categorical(_name("devices", counts, p.devices), counts)
        terms = where.pricing[(hardware, devices)]
        pricing = trial.suggest_categorical(_name("pricing", terms, p.pricing), terms)
    return TrialConfig(model=model, engine=engine, precision=precision, max_num_seqs=seqs,
                       max_num_batched_tokens=mnbt, enable_prefix_caching=prefix, kv_cache_dtype=kv,
                       hardware=hardware, devices=devices, pricing=pricing)


def enumerate_space(spec: StudySpec, offered: Offered | None = None) -> list[TrialConfig]:
    """Every configuration `suggest` can return, in an order that does not change while nothing is pruned (the
    exhaustive sampler's indices point into it)."""
    s, p = spec.space, spec.space.placements
    where = placing(spec, offered)
    out = []
    for model, engine in itertools.product(s.models, s.engines):
        vllm = engine == "vllm"
        for precision, seqs, prefix, mnbt, kv, hardware, pricing in itertools.product(
                s.precisions_for(engine), _seqs_values(s), s.enable_prefix_caching,
                s.max_num_batched_tokens if vllm else [None], s.kv_cache_dtype if vllm else ["auto"],
                hardware_for(engine, where.hardware), p.pricing):
            for devices in where.devices[hardware]:
                if pricing not in where.pricing[(hardware, devices)]:
                    continue  # no offer on these terms (and this machine is priced once, see hardware_for)
                out.append(TrialConfig(model=model, engine=engine, precision=precision, max_num_seqs=seqs,
                                       max_num_batched_tokens=mnbt, enable_prefix_caching=prefix,
                                       kv_cache_dtype=kv, hardware=hardware, devices=devices, pricing=pricing))
    return out + [TrialConfig.for_api(a.name) for a in s.apis]


def params_for(cfg: TrialConfig, spec: StudySpec, space_keys: set[str] | None = None,
               offered: Offered | None = None) -> dict[str, Any] | None:
    """Optuna parameters that make `suggest` (given the same `offered`) return `cfg`, to enqueue it, or None if the
    configuration is outside the space (`space_keys`: the space's configuration keys, when the caller has them)."""
    if cfg.key() not in (space_keys if space_keys is not None else
                         {c.key() for c in enumerate_space(spec, offered)}):
        return None
    if cfg.is_api:
        return {"model": spec.space.models[0], "engine": API_PREFIX, "api": cfg.model}
    params: dict[str, Any] = {"model": cfg.model, "engine": cfg.engine, f"precision_{cfg.engine}": cfg.precision,
                              "max_num_seqs": cfg.max_num_seqs, "enable_prefix_caching": cfg.enable_prefix_caching}
    if cfg.engine == "vllm":
        params["vllm_max_num_batched_tokens"] = cfg.max_num_batched_tokens
        params["vllm_kv_cache_dtype"] = cfg.kv_cache_dtype
    p, where = spec.space.placements, placing(spec, offered)
    if cfg.engine in PROJECTED_ENGINES:
        params[_name("hardware", where.hardware, p.hardware)] = cfg.hardware
    if cfg.hardware != "here":
        counts, terms = where.devices[cfg.hardware], where.pricing[(cfg.hardware, cfg.devices)]
        params[_name("devices", counts, p.devices)] = cfg.devices
        params[_name("pricing", terms, p.pricing)] = cfg.pricing
    return params
