"""Calibration: fit the step-time model's efficiencies and overheads to measured runs on this engine and hardware.

Engine steps are recovered from the token timestamps of a measured run: tokens from one step reach the client
together, so timestamps are clustered into steps; a step's duration is the gap from the previous step while some
sequence was decoding throughout (so no idle time is counted). Its composition is known from the records: which
requests were decoding (and their context), and whose first token it produced (their whole prompt was prefilled
in it). The four parameters are then fitted to minimise the relative error of step durations: a grid over the two
efficiencies, and non-negative least squares for the two overheads at each grid point."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from infercost.projection.hardware import Hardware
from infercost.projection.shape import ModelShape
from infercost.projection.steptime import Efficiency, StepModel
from infercost.store.runs import resolve_stored


@dataclass
class Steps:
    """One row per recovered step: sequences, new tokens, KV tokens read, attention pairs, duration (s)."""

    sequences: np.ndarray
    tokens: np.ndarray
    kv_read: np.ndarray
    pairs: np.ndarray
    duration: np.ndarray

    def __len__(self) -> int:
        return len(self.duration)

    @staticmethod
    def concat(parts: list["Steps"]) -> "Steps":
        return Steps(*(np.concatenate([getattr(p, f) for p in parts]) if parts else np.zeros(0)
                       for f in ("sequences", "tokens", "kv_read", "pairs", "duration")))


def recover_steps(requests: pd.DataFrame) -> Steps:
    ok = requests[(~requests["warmup"].astype(bool)) & requests["error"].isna() & requests["first_token_s"].notna()]
    events = []  # (time, request row, token number)
    for row, r in enumerate(ok.itertuples(index=False)):
        for k, t in enumerate(r.token_times_s):
            events.append((float(t), row, k))
    if len(events) < 3:
        return Steps.concat([])
    events.sort()
    gaps = [b - a for r in ok.itertuples(index=False) for a, b in zip(r.token_times_s, r.token_times_s[1:])]
    eps = 0.2 * float(np.median(gaps)) if gaps else 0.002
    steps: list[list[tuple[float, int, int]]] = [[events[0]]]
    for e in events[1:]:
        if e[0] - steps[-1][0][0] > eps:
            steps.append([e])
        else:
            steps[-1].append(e)
    inputs = ok["input_tokens"].fillna(0).to_numpy(dtype=float)
    out = {k: [] for k in ("sequences", "tokens", "kv_read", "pairs", "duration")}
    for prev, cur in zip(steps, steps[1:]):
        decoding = [(row, k) for _, row, k in cur if k > 0]
        if not decoding:
            continue  # only first tokens: the engine may have been idle before this step
        prefilled = [row for _, row, k in cur if k == 0]
        context = [inputs[row] + k for row, k in decoding]
        p = [inputs[row] for row in prefilled]
        out["sequences"].append(len(decoding) + len(prefilled))
        out["tokens"].append(len(decoding) + sum(p))
        out["kv_read"].append(sum(context))
        out["pairs"].append(sum(context) + sum(x * (x + 1) / 2 for x in p))
        out["duration"].append(cur[0][0] - prev[0][0])
    return Steps(*(np.asarray(out[k], dtype=float) for k in ("sequences", "tokens", "kv_read", "pairs", "duration")))


def _nonneg_lstsq(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    if (coef >= 0).all():
        return coef
    best, best_err = np.zeros(a.shape[1]), float(np.sum(y**2))
    for j in range(a.shape[1]):  # one coefficient at a time (the other at zero)
        c = max(0.0, float(a[:, j] @ y / (a[:, j] @ a[:, j]))) if a[:, j].any() else 0.0
        trial = np.zeros(a.shape[1])
        trial[j] = c
        err = float(np.sum((a @ trial - y) ** 2))
        if err < best_err:
            best, best_err = trial, err
    return best


def fit(steps: Steps, shape: ModelShape, hardware: Hardware, dtype: str, quantization: str | None = None,
        kv_cache_dtype: str = "auto", source: str = "calibrated") -> tuple[Efficiency, dict]:
    if len(steps) < 10:
        raise ValueError(f"only {len(steps)} steps recovered: measure longer runs to calibrate")
    probe = StepModel(shape, hardware, Efficiency(bandwidth=1, compute=1, step_overhead_s=0, per_seq_overhead_s=0,
                                                  expected_error=1, source="probe"), dtype, quantization,
                      kv_cache_dtype)
    bytes_read = probe.weight_bytes + steps.kv_read * probe.kv_per_token
    flops = probe.flops_per_token * steps.tokens + probe.attn_unit * steps.pairs
    t_mem, t_cmp = bytes_read / probe._bw, flops / probe._fl  # at 100% efficiency
    w = 1.0 / steps.duration
    grid = np.logspace(-2.5, 0.6, 56)
    best = None
    for eb in grid:
        for ec in grid:
            m = np.maximum(t_mem / eb, t_cmp / ec)
            a = np.stack([np.ones_like(m), steps.sequences], axis=1) * w[:, None]
            y = (steps.duration - m) * w
            coef = _nonneg_lstsq(a, y)
            pred = m + coef[0] + coef[1] * steps.sequences
            rel = np.abs(pred - steps.duration) / steps.duration
            err = float(np.mean(rel**2))
            if best is None or err < best[0]:
                best = (err, eb, ec, coef, rel)
    _, eb, ec, coef, rel = best
    stats = {"steps": int(len(steps)), "step_median_abs_rel_error": float(np.median(rel)),
             "step_mean_abs_rel_error": float(np.mean(rel))}
    eff = Efficiency(bandwidth=float(eb), compute=float(ec), step_overhead_s=float(coef[0]),
                     per_seq_overhead_s=float(coef[1]), expected_error=max(0.05, float(np.mean(rel))), source=source)
    return eff, stats


def save_calibration(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def load_calibration(path: str | Path) -> tuple[Efficiency, dict]:
    """The efficiencies and the file's data, with `runs` (recorded relative to the file) resolved from where it is."""
    path = Path(path)
    data = json.loads(path.read_text())
    eff = Efficiency.model_validate(data["efficiency"])
    data["runs"] = [str(resolve_stored(r, path.parent)) for r in data.get("runs") or []]
    return eff, data
