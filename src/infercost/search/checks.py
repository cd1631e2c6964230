"""A study's checks that need no engine and no trial, made before the first one: every model in the space exists,
and each model and engine that will be measured here passes the checks `run` makes (infercost.preflight). Without
them a study learns that a model name is misspelt from a failed trial, after starting an engine for it."""

from __future__ import annotations

from pathlib import Path

from infercost.errors import InputError
from infercost.models.bundled import BUNDLED
from infercost.preflight import locate_model, preflight
from infercost.projection.shape import presets
from infercost.search.space import TrialConfig
from infercost.search.spec import StudySpec
from infercost.spec.deployment import Deployment
from infercost.spec.loader import deployment_adapter, validate
from infercost.spec.workload import Workload


def _runnable(model: str, source: str, field: str) -> bool:
    """True where the engines can load `model` here; False for a projection preset (a shape without weights: it
    can be projected, not measured); InputError for a name that is neither."""
    try:
        locate_model(model, source, field)
        return True
    except InputError:
        if model in presets():
            return False
        if Path(model).expanduser().exists():
            raise  # a directory without config.json: its own message says so
    import difflib

    names = [*presets(), *BUNDLED]
    guess = difflib.get_close_matches(model, names, n=1, cutoff=0.6)
    raise InputError(f"unknown model {model!r}{f' (did you mean {guess[0]!r}?)' if guess else ''}: expected a "
                     f"projection preset ({', '.join(presets())}), a bundled alias ({', '.join(BUNDLED)}), or an "
                     "HF-style directory with config.json", source=source, field=field)


def check_study(spec: StudySpec, workload: Workload, study_source: str, workload_source: str) -> list[str]:
    """Raises InputError (one line naming the study or workload file and field) at the first problem; returns
    notes on what could not be checked here."""
    runnable = {m: _runnable(m, study_source, f"space.models[{i}]") for i, m in enumerate(spec.space.models)}
    notes: list[str] = []
    measured_here = spec.mode in ("measure", "hybrid") and "here" in spec.space.placements.hardware
    if spec.baseline is not None:
        _runnable(str(spec.baseline.deployment.get("model", "")), study_source, "baseline.deployment.model")
    if not measured_here:
        return notes
    first_seqs = spec.space.max_num_seqs[0] if isinstance(spec.space.max_num_seqs, list) else \
        spec.space.max_num_seqs.low
    for model, engine in ((m, e) for m in spec.space.models for e in spec.space.engines):
        if not runnable[model]:
            notes.append(f"model {model!r} is a projection preset: its configurations here are not measured")
            continue
        cfg = TrialConfig(model=model, engine=engine, precision=spec.space.precisions_for(engine)[0],
                          max_num_seqs=first_seqs)
        source = f"{study_source}: fixed"  # the deployment a trial builds from the space and `fixed`
        deployment: Deployment = validate(deployment_adapter(), cfg.deployment(spec.fixed), source=source)
        notes += preflight(workload, deployment, workload_source, source)
    return sorted(set(notes))
