"""From capacity to money: a sourced price catalog, cost per 1k requests and per 1M tokens, fleet sizing from demand,
and the FinOps views (showback, budgets, ROI, FOCUS export)."""

from infercost.cost.catalog import Catalog, Offer, TokenPrice, load_catalog
from infercost.cost.pricing import CostRow, api_cost_row, cost_rows

__all__ = ["Catalog", "CostRow", "Offer", "TokenPrice", "api_cost_row", "cost_rows", "load_catalog"]
