"""How long one engine step takes. A step runs every scheduled sequence forward once: decoding sequences one token
each, prefilling ones a chunk of their prompt. It reads the weights once and each sequence's KV cache, and does
2 x active parameters FLOPs per token plus attention. Its time is a roofline with overheads:

    step = fixed overhead + per-sequence overhead x sequences
           + max(bytes read / (peak bandwidth x bandwidth efficiency), FLOPs / (peak FLOP/s x compute efficiency))
           + tensor-parallel all-reduce time

The four efficiencies and overheads are what calibration fits from measured runs."""

from __future__ import annotations

from pydantic import BaseModel, Field

from infercost.projection.hardware import Hardware
from infercost.projection.shape import KV_BYTES, ModelShape, bytes_per_weight


class Efficiency(BaseModel):
    # shares of the hardware's peaks; above 1 is possible against a measured CPU probe the engine's kernels beat
    bandwidth: float = Field(gt=0, le=5, description="achieved share of peak memory bandwidth")
    compute: float = Field(gt=0, le=5, description="achieved share of peak dense FLOP/s")
    step_overhead_s: float = Field(ge=0)
    per_seq_overhead_s: float = Field(ge=0)
    expected_error: float = Field(gt=0, description="typical relative error of projections with these values")
    source: str


# Uncalibrated GPUs. Memory-bound decode typically reaches well over half of HBM bandwidth (the "model bandwidth
# utilisation" of Databricks/MosaicML's inference guide) and large prefills about half of dense tensor FLOP/s; the
# per-step scheduler and launch overhead is a few ms. Without a calibration on that GPU the error band is wide.
DEFAULT_GPU = Efficiency(
    bandwidth=0.7, compute=0.5, step_overhead_s=0.004, per_seq_overhead_s=2e-5, expected_error=0.4,
    source=("documented defaults, not calibrated on this GPU: bandwidth 70% of peak (model bandwidth utilisation, "
            "see Databricks 'LLM Inference Performance Engineering: Best Practices', 2023), compute 50% of dense "
            "peak (prefill FLOPs utilisation), 4 ms step overhead; expected error +-40%"),
)
DEFAULT_CPU = Efficiency(
    bandwidth=0.5, compute=0.5, step_overhead_s=0.01, per_seq_overhead_s=0.001, expected_error=0.5,
    source="uncalibrated CPU defaults (run `infercost calibrate` on this machine); expected error +-50%",
)


def step_seconds(coef, sequences, tokens, kv_read, pairs):
    """The step time from a model's terms (`StepModel.coef`: overhead, per-sequence overhead, weight bytes, KV bytes
    per token, bandwidth, FLOPs per token, attention FLOPs per pair, FLOP/s, all-reduce seconds per token). Plain
    arithmetic on a sequence, so the simulation compiles this same function (projection.kernel)."""
    bytes_read = coef[2] + kv_read * coef[3]
    flops = coef[5] * tokens + coef[6] * pairs
    return coef[0] + coef[1] * sequences + max(bytes_read / coef[4], flops / coef[7]) + coef[8] * tokens


class StepModel:
    """Step times for one model, precision and hardware. Plain float arithmetic so that it projects >10k configs/s."""

    def __init__(self, shape: ModelShape, hardware: Hardware, efficiency: Efficiency, dtype: str = "bfloat16",
                 quantization: str | None = None, kv_cache_dtype: str = "auto", tensor_parallel: int = 1):
        self.shape, self.hardware, self.eff, self.tp = shape, hardware, efficiency, tensor_parallel
        self.weight_bytes = shape.weight_bytes(quantization or dtype)
        kv = KV_BYTES.get(kv_cache_dtype) if kv_cache_dtype != "auto" else None
        self.kv_dtype_bytes = kv or min(bytes_per_weight(dtype), 4.0)
        self.kv_per_token = shape.kv_bytes_per_token(self.kv_dtype_bytes)
        self.flops_per_token = 2.0 * shape.active_params
        self.attn_unit = 4.0 * shape.layers * shape.heads * shape.head_dim  # FLOPs per (query token x context)
        self._bw = hardware.bandwidth_gbps * 1e9 * efficiency.bandwidth * tensor_parallel
        self._fl = hardware.peak_tflops(dtype, quantization) * 1e12 * efficiency.compute * tensor_parallel
        link = (hardware.interconnect_gbps or 0) * 1e9
        # all-reduce of the hidden state twice per layer; ring: 2 (tp-1)/tp of the data crosses each link
        self._comm_per_token = (0.0 if tensor_parallel == 1 or not link else
                                2 * shape.layers * 2 * shape.hidden * 2.0 * 2 * (tensor_parallel - 1)
                                / tensor_parallel / link)
        # the terms `step_seconds` reads, in its order (built once: the analytic screen calls it per configuration)
        self.coef = (efficiency.step_overhead_s, efficiency.per_seq_overhead_s, self.weight_bytes, self.kv_per_token,
                     self._bw, self.flops_per_token, self.attn_unit, self._fl, self._comm_per_token)

    def step_time(self, sequences: int, tokens: int, kv_read_tokens: float, attention_pairs: float) -> float:
        """`kv_read_tokens`: cached tokens whose KV the step reads (sum over sequences); `attention_pairs`: sum over
        new tokens of the context each attends to."""
        return step_seconds(self.coef, sequences, tokens, kv_read_tokens, attention_pairs)

    def decode_step(self, batch: int, mean_context: float) -> float:
        return self.step_time(batch, batch, batch * mean_context, batch * mean_context)

    def prefill_time(self, prompt_tokens: int, cached_tokens: int = 0) -> float:
        new = prompt_tokens - cached_tokens
        pairs = new * cached_tokens + new * (new + 1) / 2
        return self.step_time(1, new, prompt_tokens, pairs)
