"""On-prem and private servers as an hourly price, so they compare with cloud offers on the same terms: capex
amortised straight-line over the server's life, power at the facility's PUE, and an operations overhead."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from infercost.cost.catalog import Offer
from infercost.cost.formulas import HOURS_PER_MONTH
from infercost.spec.common import Spec


class OnPremServer(Spec):
    name: str = Field(min_length=1, description="SKU-like label, e.g. dgx-h100 or 2u-4xl40s")
    site: str = Field(default="on-prem", description="data centre or region label")
    accelerator: str = "none"
    accelerator_count: int = Field(default=0, ge=0)
    accelerator_memory_gb: float | None = Field(default=None, gt=0)
    vcpus: float | None = Field(default=None, gt=0)
    ram_gb: float | None = Field(default=None, gt=0)
    capex: float = Field(gt=0, description="purchase price of one server, installed")
    amortisation_years: float = Field(default=4, gt=0)
    power_kw: float = Field(ge=0, description="average draw of the server under load")
    price_per_kwh: float = Field(ge=0)
    pue: float = Field(default=1.4, ge=1, description="facility power usage effectiveness")
    ops_overhead_pct: float = Field(default=15, ge=0, description="staff, space, support: % on top of capex+power")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    source: str = Field(default="user input", description="where the figures come from (quote, PO, finance)")
    as_of: date = Field(default_factory=date.today)

    def hourly_breakdown(self) -> dict[str, float]:
        capex_h = self.capex / (self.amortisation_years * 12 * HOURS_PER_MONTH)
        power_h = self.power_kw * self.pue * self.price_per_kwh
        ops_h = (capex_h + power_h) * self.ops_overhead_pct / 100
        return {"capex_hourly": capex_h, "power_hourly": power_h, "ops_hourly": ops_h,
                "total_hourly": capex_h + power_h + ops_h}

    def offer(self) -> Offer:
        b = self.hourly_breakdown()
        return Offer(
            provider="on-prem", region=self.site, region_name=self.site, sku=self.name, accelerator=self.accelerator,
            accelerator_count=self.accelerator_count, accelerator_memory_gb=self.accelerator_memory_gb,
            vcpus=self.vcpus, ram_gb=self.ram_gb, on_demand_hourly=b["total_hourly"],
            # owned hardware has one price whatever the pricing model; reserved == on-demand
            reserved_1y_hourly=b["total_hourly"], reserved_3y_hourly=b["total_hourly"], currency=self.currency,
            source=self.source, as_of=self.as_of,
            notes=(f"capex {self.capex:g} over {self.amortisation_years:g} y = {b['capex_hourly']:.4f}/h; power "
                   f"{self.power_kw:g} kW x PUE {self.pue:g} x {self.price_per_kwh:g}/kWh = {b['power_hourly']:.4f}/h; "
                   f"ops {self.ops_overhead_pct:g}% = {b['ops_hourly']:.4f}/h"),
        )
