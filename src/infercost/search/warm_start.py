"""Where a study starts: the configurations the closed-form estimate ranks cheapest, queued before the sampler
chooses. The estimate (latency floors and a steady-state throughput bound, priced like a trial) runs at thousands of
configurations per second and is optimistic by the same kind of margin everywhere, so its ranking points at the
cheap region of the space; measuring or simulating its top few first means no seed starts blind. The sampler then
explores, including what the estimate misjudges (queueing under a tight TTFT, prefix caching)."""

from __future__ import annotations

import math

import optuna

from infercost.search.evaluate import Evaluator
from infercost.search.space import TrialConfig, enumerate_space, params_for
from infercost.search.spec import StudySpec

WARM_SHARE = 0.2  # of the trial budget: enough to cover the top of the ranking, most of it left to the sampler
MAX_RANKED = 50_000  # spaces larger than this are sampled, not ranked (ranking costs about a millisecond each)


def warm_start_size(spec: StudySpec, space_size: int) -> int:
    return min(space_size, max(3, math.ceil(spec.n_trials * WARM_SHARE)))


def ranked(spec: StudySpec, evaluator: Evaluator,
           space: list[TrialConfig] | None = None) -> list[tuple[float, TrialConfig]]:
    """Every configuration the screen keeps and the catalog prices, cheapest estimate first."""
    space = enumerate_space(spec, evaluator.pricing_offered) if space is None else space
    if len(space) > MAX_RANKED:
        return []
    out = []
    for cfg in space:
        cost = evaluator.estimated_objective(cfg)
        if cost is not None and math.isfinite(cost):
            out.append((cost, cfg))
    return sorted(out, key=lambda x: (x[0], x[1].key()))


def warm_start(study: optuna.Study, spec: StudySpec, evaluator: Evaluator) -> list[str]:
    """Queues the top of the ranking on a study with no trials yet (a resumed study keeps its queue); returns the
    queued configurations' keys, also stored as the study's `warm_start` attribute."""
    space = enumerate_space(spec, evaluator.pricing_offered)
    space_keys = {c.key() for c in space}
    ranking = ranked(spec, evaluator, space)
    chosen = ranking[:warm_start_size(spec, len(space))]
    keys = []
    for rank, (cost, cfg) in enumerate(chosen):
        params = params_for(cfg, spec, space_keys, evaluator.pricing_offered)
        if params is None:
            continue
        study.enqueue_trial(params, user_attrs={"warm_start": rank, "estimated_objective": cost},
                            skip_if_exists=True)
        keys.append(cfg.key())
    study.set_user_attr("warm_start", {"configurations": keys, "ranked": len(ranking), "share": WARM_SHARE})
    return keys
