"""Which offers a configuration is priced on, and the throughput a projected one is priced by: one rule for a
study's trials, its report and `infercost project`."""

from __future__ import annotations

from typing import Any

from infercost.cost.catalog import Catalog, Offer
from infercost.cost.placement import accelerator_offers, matching_offers
from infercost.cost.pricing import Throughput
from infercost.metrics.intervals import Confidence
from infercost.spec.workload import Workload

HERE = ("here", "host-cpu")  # this machine: priced on CPU instances like it, not on an accelerator


def offers_for(catalog: Catalog, hardware: str, devices: int = 1, measured_on: dict[str, Any] | None = None,
               engine: dict[str, Any] | None = None, providers: list[str] | None = None,
               regions: list[str] | None = None) -> list[Offer]:
    """Offers that host one replica on `hardware`. This machine is priced on CPU instances with its cores (the
    hardware a measurement recorded, else this machine's); an accelerator on offers with `devices` of them."""
    if hardware in HERE:
        if measured_on is None:
            from infercost.provenance import hardware as this_machine

            measured_on = this_machine()
        offers, _ = matching_offers(catalog, measured_on, {"device": "cpu"} if engine is None else engine, None, 1)
    else:
        offers = accelerator_offers(catalog, hardware, devices)
    return [o for o in offers if (providers is None or o.provider in providers)
            and (regions is None or o.region in regions)]


def projected_throughput(capacity_rps: float, mean_input_tokens: float | None, mean_output_tokens: float | None,
                         workload: Workload, deployment: str, source: str, expected_error: float,
                         band: tuple[float | None, float | None] = (None, None),
                         confidence: Confidence | None = None) -> Throughput:
    """A projected capacity to price, with the calibration it rests on and its expected error in its basis, and the
    capacities simulated at the band's ends (`band`: slow end, fast end)."""
    return Throughput(kind="projected", capacity_rps=capacity_rps, mean_input_tokens=mean_input_tokens,
                      mean_output_tokens=mean_output_tokens, workload=workload.name, deployment=deployment,
                      basis=f"projected capacity ({source}; expected error +-{expected_error:.0%})",
                      tags=workload.tags.as_dict(), capacity_low_rps=band[0], capacity_high_rps=band[1],
                      confidence=confidence)
