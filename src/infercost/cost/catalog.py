"""The price catalog: one row per offer (an instance type in a region) and one per hosted model's token prices,
shipped as CSV under `cost/data/` with a source and an as-of date on every row. Users add or override rows with
their own CSV (negotiated discounts, private clouds): a row with the same provider, region and SKU replaces the
shipped one. Public catalogs contain mistakes, so every row is validated and a bad one is reported as one line
naming the file, row and field."""

from __future__ import annotations

import csv
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from infercost.errors import InputError
from infercost.spec.files import MAX_CSV_BYTES, read_text

ACCELERATORS = ("H100-SXM", "H100-PCIe", "H200", "B200", "A100-80GB", "A100-40GB", "L40S", "L4", "A10G", "A10", "T4",
                "MI300X", "none")


def _blank_to_none(v):
    return None if isinstance(v, str) and not v.strip() else v


class Offer(BaseModel):
    """An hourly-priced place to run: a cloud instance, a GPU cloud pod, or an on-prem server."""

    model_config = {"extra": "forbid", "frozen": True}
    provider: str = Field(min_length=1)
    region: str = Field(min_length=1)
    region_name: str | None = None
    sku: str = Field(min_length=1)
    accelerator: str
    accelerator_count: int = Field(ge=0)
    accelerator_memory_gb: float | None = Field(default=None, gt=0)
    vcpus: float | None = Field(default=None, gt=0)
    ram_gb: float | None = Field(default=None, gt=0)
    on_demand_hourly: float = Field(gt=0)
    spot_hourly: float | None = Field(default=None, gt=0)
    reserved_1y_hourly: float | None = Field(default=None, gt=0)
    reserved_3y_hourly: float | None = Field(default=None, gt=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    source: str = Field(min_length=1)
    as_of: date
    notes: str | None = None

    _blank = field_validator("region_name", "accelerator_memory_gb", "vcpus", "ram_gb", "spot_hourly",
                             "reserved_1y_hourly", "reserved_3y_hourly", "notes", mode="before")(_blank_to_none)

    @field_validator("accelerator")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ACCELERATORS:
            raise ValueError(f"unknown accelerator {v!r}: expected one of {', '.join(ACCELERATORS)}")
        return v

    @field_validator("as_of")
    @classmethod
    def _not_future(cls, v: date) -> date:
        if v > date.today():
            raise ValueError(f"as_of {v} is in the future")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Offer":
        if self.accelerator == "none" and self.accelerator_count != 0:
            raise ValueError("accelerator_count must be 0 when accelerator is none")
        if self.accelerator != "none" and self.accelerator_count < 1:
            raise ValueError("accelerator_count must be at least 1 for an accelerator offer")
        for name in ("spot_hourly", "reserved_1y_hourly", "reserved_3y_hourly"):
            price = getattr(self, name)
            if price is not None and price > self.on_demand_hourly:
                raise ValueError(f"{name} ({price}) is above on_demand_hourly ({self.on_demand_hourly})")
        if (self.reserved_1y_hourly is not None and self.reserved_3y_hourly is not None
                and self.reserved_3y_hourly > self.reserved_1y_hourly):
            raise ValueError("reserved_3y_hourly is above reserved_1y_hourly")
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.region, self.sku)

    def hourly(self, pricing: str) -> float | None:
        return self.on_demand_hourly if pricing == "on_demand" else getattr(self, f"{pricing}_hourly")

    def label(self) -> str:
        acc = "CPU" if self.accelerator == "none" else f"{self.accelerator_count}x {self.accelerator}"
        return f"{self.provider} {self.region} {self.sku} ({acc})"


class TokenPrice(BaseModel):
    """A hosted model's list prices per million tokens, where to reach it (an OpenAI-compatible base URL and the
    environment variable its key is read from) and the rate limits that act as its capacity (they depend on the
    account's tier: override the row with your own)."""

    model_config = {"extra": "forbid", "frozen": True}
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    input_per_1m: float = Field(gt=0)
    cached_input_per_1m: float | None = Field(default=None, gt=0)
    output_per_1m: float = Field(gt=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    source: str = Field(min_length=1)
    as_of: date
    notes: str | None = None
    base_url: str | None = Field(default=None, pattern=r"^https?://")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    limits_source: str | None = None

    _blank = field_validator("cached_input_per_1m", "notes", "base_url", "api_key_env", "requests_per_minute",
                             "tokens_per_minute", "limits_source", mode="before")(_blank_to_none)

    @model_validator(mode="after")
    def _cached_cheaper(self) -> "TokenPrice":
        if self.cached_input_per_1m is not None and self.cached_input_per_1m > self.input_per_1m:
            raise ValueError("cached_input_per_1m is above input_per_1m")
        return self

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.model)


class Catalog(BaseModel):
    offers: list[Offer]
    token_prices: list[TokenPrice]
    sources: list[str]  # the files read, in order (later ones override earlier rows)

    def find(self, provider: str | None = None, region: str | None = None, accelerator: str | None = None,
             sku: str | None = None, min_vcpus: float | None = None, min_ram_gb: float | None = None,
             accelerator_count: int | None = None) -> list[Offer]:
        def ok(o: Offer) -> bool:
            return ((provider is None or o.provider == provider) and (region is None or o.region == region)
                    and (accelerator is None or o.accelerator == accelerator) and (sku is None or o.sku == sku)
                    and (accelerator_count is None or o.accelerator_count == accelerator_count)
                    and (min_vcpus is None or (o.vcpus or 0) >= min_vcpus)
                    and (min_ram_gb is None or (o.ram_gb or 0) >= min_ram_gb))

        return [o for o in self.offers if ok(o)]

    def token_price(self, provider: str, model: str) -> TokenPrice | None:
        return next((t for t in self.token_prices if t.key == (provider, model)), None)

    def api_price(self, name: str, source: str, field: str) -> TokenPrice:
        """The token prices of `vendor/model`, or a one-line error listing the names the catalog knows."""
        vendor, _, model = name.partition("/")
        price = self.token_price(vendor, model)
        if price is not None:
            return price
        vendors = sorted({t.provider for t in self.token_prices})
        if vendor not in vendors:
            raise InputError(f"unknown API vendor {vendor!r}: the catalog has {', '.join(vendors)}", source=source,
                             field=field)
        models = sorted(f"{t.provider}/{t.model}" for t in self.token_prices if t.provider == vendor)
        raise InputError(f"unknown API model {name!r}: the catalog has {', '.join(models)}", source=source,
                         field=field)

    def offers_frame(self):
        import pandas as pd

        return pd.DataFrame([o.model_dump() for o in self.offers])


def _rows(path: Path | None, text: str, source: str) -> Iterable[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        raise InputError("empty CSV (expected a header row)", source=source)
    for line, row in _csv_rows(reader, source):
        if None in row:
            raise InputError(f"row {line}: more cells than header columns", source=source)
        if not any((v or "").strip() for v in row.values()):
            continue
        yield line, {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}


def _csv_rows(reader: csv.DictReader, source: str) -> Iterable[tuple[int, dict]]:
    """The reader's rows with their line numbers; a csv.Error (e.g. a field over csv's 128 KB limit) is one line
    naming the row, not a traceback."""
    while True:
        done = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"row {done + 1}: not valid CSV ({exc})", source=source) from None
        yield reader.line_num, row


def _parse(model: type[BaseModel], text: str, source: str, required: set[str]) -> list:
    header = next(csv.reader(text.splitlines()), None) or []
    missing = required - {h.strip() for h in header}
    if missing:
        raise InputError(f"missing columns: {', '.join(sorted(missing))}", source=source)
    out = []
    for line, row in _rows(None, text, source):
        try:
            out.append(model.model_validate(row))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"]) or "(row)"
            msg = err["msg"].removeprefix("Value error, ")
            given = f" (got {row.get(field)!r})" if field in row else ""
            raise InputError(f"row {line}: {msg}{given}", source=source, field=field) from None
    return out


def _kind(header: list[str]) -> str:
    return "token_prices" if "output_per_1m" in header else "offers"


_REQUIRED = {
    "offers": {"provider", "region", "sku", "accelerator", "accelerator_count", "on_demand_hourly", "source", "as_of"},
    "token_prices": {"provider", "model", "input_per_1m", "output_per_1m", "source", "as_of"},
}


def load_catalog(extra: Iterable[str | Path] = (), builtin: bool = True) -> Catalog:
    """The shipped catalog plus the user's CSV files (offers or token prices, told apart by their columns)."""
    files: list[tuple[str, str]] = []
    if builtin:
        data = resources.files("infercost.cost") / "data"
        for name in ("instances.csv", "api_prices.csv"):
            files.append((f"infercost:cost/data/{name}", (data / name).read_text(encoding="utf-8")))
    for path in extra:
        files.append((str(path), read_text(path, MAX_CSV_BYTES, "catalog file")))  # size and UTF-8 checked
    offers: dict[tuple, Offer] = {}
    prices: dict[tuple, TokenPrice] = {}
    for source, text in files:
        try:
            header = [h.strip() for h in next(csv.reader(text.splitlines()), [])]
        except csv.Error as exc:
            raise InputError(f"not valid CSV ({exc})", source=source, field="line 1") from None
        kind = _kind(header)
        model = TokenPrice if kind == "token_prices" else Offer
        target = prices if kind == "token_prices" else offers
        seen: set[tuple] = set()
        for row in _parse(model, text, source, _REQUIRED[kind]):
            if row.key in seen:
                raise InputError(f"duplicate row for {' / '.join(row.key)}", source=source)
            seen.add(row.key)
            target[row.key] = row  # a later file overrides the same key
    return Catalog(offers=list(offers.values()), token_prices=list(prices.values()), sources=[s for s, _ in files])
