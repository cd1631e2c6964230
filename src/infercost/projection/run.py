"""`project`: a workload's latency, capacity and cost on hardware that is not at hand, as one typed result."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from infercost.capacity.result import CapacityOptions, CapacityResult
from infercost.cost.catalog import Catalog
from infercost.cost.offers import HERE, offers_for, projected_throughput
from infercost.cost.pricing import CostRow, cost_rows
from infercost.metrics import RunSummary
from infercost.projection.project import Lengths, Projector, workload_lengths
from infercost.metrics.intervals import Confidence
from infercost.projection.setup import calibration_from, capacity_band, confidence_of, projector_for, token_counter
from infercost.projection.shape import load_shape
from infercost.spec.deployment import Deployment
from infercost.spec.workload import Workload


class Projection(BaseModel):
    """Projected, never measured: every figure rests on `provenance` (model shape, hardware, efficiencies and
    their expected error)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    summary: RunSummary | None  # one run at the workload's own traffic; None when the model does not fit
    capacity: CapacityResult
    capacity_low_rps: float | None = None  # simulated at the error band's slow end
    capacity_high_rps: float | None = None  # and at its fast end
    confidence: Confidence
    cost: list[CostRow]  # cheapest first
    provenance: dict[str, Any]
    projector: Projector = Field(exclude=True)
    lengths: Lengths

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary.model_dump(mode="json") if self.summary else None,
                "capacity": self.capacity.model_dump(mode="json"),
                "capacity_interval": [self.capacity_low_rps, self.capacity_high_rps],
                "confidence": self.confidence.model_dump(mode="json"),
                "cost": [r.model_dump(mode="json") for r in self.cost], "provenance": self.provenance}


def project(workload: Workload, deployment: Deployment, hardware: str, *, model: str | None = None,
            devices: int | None = None, dtype: str | None = None, calibration: str | Path | None = None,
            options: CapacityOptions | None = None, catalog: Catalog | None = None) -> Projection:
    """`catalog=None` projects latency and capacity only; this machine is not priced by a projection."""
    shape = load_shape(model or deployment.model)
    projector = projector_for(deployment, hardware, calibration=calibration_from(calibration) if calibration
                              else None, shape=shape, devices=devices, dtype=dtype)
    lengths = workload_lengths(workload, token_counter(model or deployment.model))
    summary = projector.run(workload, lengths) if projector.memory.fits else None
    options = options or CapacityOptions()
    capacity = asyncio.run(projector.capacity(workload, lengths, options))
    band = asyncio.run(capacity_band(projector, workload, lengths, options)) if capacity.capacity_rps else (None, None)
    confidence = confidence_of(projector)
    rows: list[CostRow] = []
    if capacity.capacity_rps and catalog is not None and projector.hardware.name not in HERE:
        eff = projector.efficiency
        tp = projected_throughput(capacity.capacity_rps, summary.mean_input_tokens if summary else None,
                                  summary.mean_output_tokens if summary else None, workload, capacity.deployment,
                                  eff.source, eff.expected_error, band, confidence)
        tp.weights_gb = projector.memory.weights_gb  # an added replica's start-up reads them
        offers = offers_for(catalog, projector.hardware.name, projector.config["devices"])
        rows = sorted(cost_rows(tp, offers, workload.demand), key=lambda r: r.cost_per_1k_requests)
    return Projection(summary=summary, capacity=capacity, capacity_low_rps=band[0], capacity_high_rps=band[1],
                      confidence=confidence, cost=rows, provenance=projector.provenance(lengths),
                      projector=projector, lengths=lengths)
