"""Projected monthly costs as a FOCUS-shaped table (FinOps Open Cost and Usage Specification v1.2 column names),
so FinOps tools that ingest FOCUS exports can show the projection beside actual bills. Rows are forecasts, not
invoices: invoice and account columns are empty, and `x_`-prefixed custom columns (allowed by the spec) say the
row is a projection and where its capacity came from."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Iterable

import pandas as pd

from infercost.cost.pricing import CostRow

FOCUS_VERSION = "1.2"

_PRICING_CATEGORY = {"on_demand": "Standard", "spot": "Dynamic", "reserved_1y": "Committed", "reserved_3y": "Committed"}
_SERVICE = {
    "aws": ("Amazon Elastic Compute Cloud", "Amazon Web Services"),
    "gcp": ("Compute Engine", "Google Cloud"),
    "azure": ("Virtual Machines", "Microsoft Azure"),
    "lambda": ("Lambda Cloud", "Lambda"),
    "coreweave": ("CoreWeave Cloud", "CoreWeave"),
    "runpod": ("RunPod Pods", "RunPod"),
    "on-prem": ("On-premises servers", "On-premises"),
}

COLUMNS = [
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice",
    "BillingCurrency", "PricingCurrency", "PricingCategory", "PricingUnit", "PricingQuantity", "ConsumedQuantity",
    "ConsumedUnit", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodStart",
    "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd", "BillingAccountId", "BillingAccountName",
    "SubAccountId", "SubAccountName", "InvoiceId", "InvoiceIssuerName", "ProviderName", "PublisherName", "RegionId",
    "RegionName", "AvailabilityZone", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory",
    "ServiceSubcategory", "ServiceName", "SkuId", "SkuPriceId", "SkuMeter", "CommitmentDiscountCategory",
    "CommitmentDiscountType", "Tags", "x_CostKind", "x_Workload", "x_Deployment", "x_PricingModel",
    "x_CapacityRps", "x_CostPer1kRequests", "x_MonthlyRequests", "x_CapacityBasis", "x_PriceSource",
    "x_PriceAsOf", "x_FocusVersion",
]
NUMERIC = ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice",
           "PricingQuantity", "ConsumedQuantity", "x_CapacityRps", "x_CostPer1kRequests", "x_MonthlyRequests"]
DATETIME = ["ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"]


def next_month(today: date | None = None) -> tuple[datetime, datetime]:
    today = today or datetime.now(timezone.utc).date()
    start = date(today.year + (today.month == 12), today.month % 12 + 1, 1)
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return (datetime(start.year, start.month, 1, tzinfo=timezone.utc),
            datetime(end.year, end.month, 1, tzinfo=timezone.utc))


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_frame(rows: Iterable[CostRow], period: tuple[datetime, datetime] | None = None) -> pd.DataFrame:
    """One FOCUS row per cost row with a monthly cost. Instance rows are priced in hours (PricingQuantity =
    replica-hours in the period, scaled from 730 h to the period's real length); API rows in 1M tokens, one row for
    input and one for output."""
    start, end = period or next_month()
    period_hours = (end - start).total_seconds() / 3600
    out = []
    for r in rows:
        if r.monthly_cost is None:
            continue
        service, provider_name = _SERVICE.get(r.provider, (f"{r.provider} compute", r.provider))
        tags = json.dumps({**r.tags, "infercost-deployment": r.deployment}, sort_keys=True)
        base = {
            "BillingCurrency": r.currency, "PricingCurrency": r.currency, "ChargeCategory": "Usage",
            "ChargeClass": None, "ChargeFrequency": "Usage-Based", "ChargePeriodStart": _iso(start),
            "ChargePeriodEnd": _iso(end), "BillingPeriodStart": _iso(start), "BillingPeriodEnd": _iso(end),
            "BillingAccountId": None, "BillingAccountName": None, "SubAccountId": None, "SubAccountName": None,
            "InvoiceId": None, "InvoiceIssuerName": provider_name, "ProviderName": provider_name,
            "PublisherName": provider_name, "RegionId": r.region, "RegionName": r.region_name or r.region,
            "AvailabilityZone": None, "ResourceId": None, "ResourceName": f"{r.workload}/{r.deployment}",
            "ServiceCategory": "AI and Machine Learning", "ServiceSubcategory": "Generative AI",
            "ServiceName": service, "SkuId": r.sku, "SkuPriceId": f"{r.sku}:{r.pricing}", "Tags": tags,
            "x_CostKind": f"projected ({r.kind})", "x_Workload": r.workload, "x_Deployment": r.deployment,
            "x_PricingModel": r.pricing, "x_CapacityRps": r.capacity_rps,
            "x_CostPer1kRequests": r.cost_per_1k_requests, "x_MonthlyRequests": r.monthly_requests,
            "x_CapacityBasis": r.capacity_basis, "x_PriceSource": r.price_source, "x_PriceAsOf": r.price_as_of,
            "x_FocusVersion": FOCUS_VERSION,
        }
        committed = r.pricing.startswith("reserved")
        if r.kind != "api":
            # serving and start-up hours; the cost is the bill's (a spot fleet's floor on demand, its interrupted
            # hours at the on-demand price), so the unit price is that bill's average
            hours = ((r.replica_hours_per_day or 0) + (r.startup_replica_hours_per_day or 0)) * period_hours / 24
            cost = r.monthly_cost * period_hours / 730.0
            list_cost = r.list_hourly_price * hours
            out.append({**base, "BilledCost": cost, "EffectiveCost": cost, "ListCost": list_cost,
                        "ContractedCost": cost, "ListUnitPrice": r.list_hourly_price,
                        "ContractedUnitPrice": cost / hours if hours else r.hourly_price, "PricingCategory": _PRICING_CATEGORY[r.pricing],
                        "PricingUnit": "Hours", "PricingQuantity": hours, "ConsumedQuantity": hours,
                        "ConsumedUnit": "Hours",
                        "ChargeDescription": f"{r.sku} ({r.accelerator_count}x {r.accelerator}) {r.pricing}, "
                                             f"{r.monthly_cost_basis}",
                        "ResourceType": "Virtual Machine", "SkuMeter": "Compute Hours",
                        "CommitmentDiscountCategory": "Usage" if committed else None,
                        "CommitmentDiscountType": f"Reserved {r.pricing[-2:]}" if committed else None})
            continue
        requests = (r.monthly_requests or 0) * period_hours / 730.0
        parts = (("Input", r.mean_input_tokens, r.input_per_1m, r.effective_input_per_1m),
                 ("Output", r.mean_output_tokens, r.output_per_1m, r.output_per_1m))
        for part, tokens, list_unit, unit in parts:
            millions = requests * (tokens or 0) / 1e6
            out.append({**base, "BilledCost": millions * unit, "EffectiveCost": millions * unit,
                        "ListCost": millions * list_unit, "ContractedCost": millions * unit,
                        "ListUnitPrice": list_unit, "ContractedUnitPrice": unit, "PricingCategory": "Standard",
                        "PricingUnit": "1M Tokens", "PricingQuantity": millions, "ConsumedQuantity": millions * 1e6,
                        "ConsumedUnit": "Tokens", "ChargeDescription": f"{r.sku} {part.lower()} tokens",
                        "ResourceType": "Model API", "SkuMeter": f"{part} Tokens",
                        "CommitmentDiscountCategory": None, "CommitmentDiscountType": None})
    frame = pd.DataFrame(out, columns=COLUMNS)
    for col in NUMERIC:
        frame[col] = pd.to_numeric(frame[col])
    return frame


def write_focus(rows: Iterable[CostRow], path, period: tuple[datetime, datetime] | None = None) -> pd.DataFrame:
    frame = focus_frame(rows, period)
    frame.to_csv(path, index=False)
    return frame


def read_focus(path) -> pd.DataFrame:
    """Read a FOCUS CSV back with its types: numbers as floats, periods as UTC timestamps."""
    frame = pd.read_csv(path)
    for col in DATETIME:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame
