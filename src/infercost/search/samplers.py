"""Samplers of our own, behind Optuna's sampler interface."""

from __future__ import annotations

import random
from typing import Any, Iterable

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

GRID_PARAM = "grid_index"  # the index of a configuration in the enumerated space


def taken_indices(trials: Iterable[FrozenTrial]) -> set[int]:
    """The grid indices these trials hold: finished or running ones their parameter, queued ones the parameter they
    are queued with. A failed trial holds none (its configuration is free again)."""
    taken = set()
    for t in trials:
        if t.state == TrialState.FAIL:
            continue
        value = t.params.get(GRID_PARAM) if t.state != TrialState.WAITING else \
            (t.system_attrs.get("fixed_params") or {}).get(GRID_PARAM)
        if value is not None:
            taken.add(int(value))
    return taken


class ExhaustiveSampler(optuna.samplers.BaseSampler):
    """Every configuration of the space once, in a seeded order. Optuna's GridSampler compares the whole grid with
    every past trial on each new one (its time per trial grows with the study: hours for a few thousand
    configurations); here trial n takes the first configuration not yet taken from position n of the order, one
    pass over the trials. Workers sharing the study start from different positions, so they rarely meet; a failed
    trial's configuration is free again unless it is already queued."""

    def __init__(self, size: int, seed: int | None = None):
        self.size = size
        self.order = list(range(size))
        random.Random(seed).shuffle(self.order)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if param_name != GRID_PARAM:
            raise ValueError(f"the exhaustive sampler only chooses {GRID_PARAM}, not {param_name}")
        taken = taken_indices(t for t in study.get_trials(deepcopy=False) if t.number != trial.number)
        start = trial.number % self.size
        for j in range(self.size):
            index = self.order[(start + j) % self.size]
            if index not in taken:
                return index
        return self.order[start]  # every configuration taken: a repeat, whose outcome the study reuses
