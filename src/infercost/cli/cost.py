"""`infercost catalog` and `infercost cost`: the price catalog, and measured capacity turned into money."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infercost.cli.common import parent
from infercost.spec.vocabulary import PRICING_MODELS
from infercost.errors import InputError


def _catalog(args):
    from infercost.cost.catalog import load_catalog

    return load_catalog(args.catalog or (), builtin=not getattr(args, "no_builtin", False))


def cmd_catalog(args: argparse.Namespace) -> int:
    from rich.console import Console

    from infercost.report.cost_console import offers_table, token_prices_table

    console = Console(highlight=False)
    if args.action == "validate":
        from infercost.cost.catalog import load_catalog

        catalog = load_catalog([*(args.catalog or ()), *args.files], builtin=not args.files)
        print(f"ok: {len(catalog.offers)} offers, {len(catalog.token_prices)} token prices "
              f"({', '.join(catalog.sources)})")
        return 0
    catalog = _catalog(args)
    offers = catalog.find(provider=args.provider, region=args.region, accelerator=args.accelerator, sku=args.sku,
                          min_vcpus=args.min_vcpus, min_ram_gb=args.min_ram_gb)
    offers.sort(key=lambda o: (o.accelerator, o.on_demand_hourly))
    prices = [t for t in catalog.token_prices if args.provider in (None, t.provider)]
    if args.action == "show":
        if not offers and not prices:
            raise InputError("no catalog row matches the filters", field="catalog show")
        for item in [*offers, *(prices if args.sku is None else [p for p in prices if p.model == args.sku])]:
            print(json.dumps(item.model_dump(mode="json"), indent=2))
        return 0
    if args.json:
        print(json.dumps({"offers": [o.model_dump(mode="json") for o in offers],
                          "token_prices": [t.model_dump(mode="json") for t in prices]}, indent=2))
        return 0
    if offers:
        console.print(offers_table(offers))
    if prices and args.accelerator is None and args.sku is None:
        console.print(token_prices_table(prices))
    console.print(f"{len(offers)} offers, {len(prices)} token prices; sources: {', '.join(catalog.sources)}")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    from rich.console import Console

    from infercost.cost.finops import showback
    from infercost.cost.focus import write_focus
    from infercost.cost.onprem import OnPremServer
    from infercost.cost.price_results import price_result
    from infercost.cost.pricing import FleetPolicy
    from infercost.report.cost_console import print_cost
    from infercost.spec.loader import read_yaml, validate

    console = Console(highlight=False)
    catalog = _catalog(args)
    pricing = tuple(args.pricing.split(",")) if args.pricing else PRICING_MODELS
    for p in pricing:
        if p not in PRICING_MODELS:
            raise InputError(f"unknown pricing model {p!r}: expected {', '.join(PRICING_MODELS)}", field="--pricing")
    policy = validate(FleetPolicy, {k: v for k, v in {
        "target_utilisation": args.utilisation, "min_replicas": args.min_replicas, "scale_step": args.scale_step,
        "autoscale": False if args.no_autoscale else None, "on_demand_floor": args.on_demand_floor,
        "spot_hours_lost": args.spot_hours_lost, "scale_up_s": args.scale_up_s}.items() if v is not None},
        source="command line")
    onprem = [validate(OnPremServer, read_yaml(f), source=f).offer() for f in args.onprem or ()]
    filters = {k: getattr(args, k) for k in ("provider", "region", "accelerator", "sku") if getattr(args, k)}
    all_rows, outputs = [], []
    for path in args.results:
        priced = price_result(path, catalog, filters=filters, policy=policy, pricing=pricing, extra_offers=onprem,
                              apis=args.api or (), cached_share=args.cached_share, top=args.top)
        all_rows += priced.rows
        outputs.append(priced.to_json())
        if not args.json:
            t = priced.throughput
            print_cost(console, priced.rows, f"cost of {t.workload} on {t.deployment} ({t.kind}: "
                                             f"{t.capacity_rps:.3g} req/s per replica)", priced.selection, t.basis,
                       priced.budget, priced.value)
    if args.showback:
        frame = showback(all_rows, args.showback.split(","), pricing=pricing[0])
        outputs.append({"showback": json.loads(frame.to_json(orient="records"))})
        if not args.json:
            console.print(f"showback by {args.showback} ({pricing[0].replace('_', ' ')}; each workload's cheapest "
                          f"row, not the alternatives beside it):")
            console.print(frame.to_string(index=False))
    if args.focus:
        frame = write_focus(all_rows, args.focus)
        if not args.json:
            console.print(f"FOCUS {len(frame)} rows: {args.focus}")
    if args.json:
        print(json.dumps(outputs, indent=2, default=str))
    return 0


def add_parsers(sub) -> None:
    cat = sub.add_parser("catalog", parents=[parent("catalog", "json")],
                         help="the price catalog: list, validate or show offers and token prices")
    cat.add_argument("action", choices=["list", "validate", "show"])
    cat.add_argument("files", nargs="*", help="validate: CSV files to check (default: the shipped catalog)")
    for flag in ("provider", "region", "accelerator", "sku"):
        cat.add_argument(f"--{flag}")
    cat.add_argument("--min-vcpus", type=float)
    cat.add_argument("--min-ram-gb", type=float)
    cat.set_defaults(func=cmd_catalog)

    cost = sub.add_parser("cost", parents=[parent("catalog", "json")],
                          help="cost per 1k requests, per 1M tokens and per month from capacity results")
    cost.add_argument("results", nargs="+", help="capacity result (or run) directories")
    for flag in ("provider", "region", "accelerator", "sku"):
        cost.add_argument(f"--{flag}", help=f"price on offers with this {flag} (default: the hardware measured on)")
    cost.add_argument("--pricing", help=f"comma-separated: {','.join(PRICING_MODELS)} (default: all)")
    cost.add_argument("--utilisation", type=float, help="target share of SLO capacity (headroom), default 0.7")
    cost.add_argument("--min-replicas", type=int)
    cost.add_argument("--scale-step", type=int)
    cost.add_argument("--no-autoscale", action="store_true", help="provision for the peak around the clock")
    cost.add_argument("--on-demand-floor", type=int, help="replicas of a spot fleet kept on demand, default 1")
    cost.add_argument("--spot-hours-lost", type=float,
                      help="share of spot hours lost to interruption (default: the provider's rate)")
    cost.add_argument("--scale-up-s", type=float, help="seconds an added replica is paid before it serves "
                      "(default: the measured start-up)")
    cost.add_argument("--onprem", action="append", help="YAML describing an owned server (repeatable)")
    cost.add_argument("--api", action="append", metavar="PROVIDER/MODEL",
                      help="also price the measured token counts at a hosted model's prices (build vs buy)")
    cost.add_argument("--cached-share", type=float, default=0.0, help="share of API input tokens billed as cached")
    cost.add_argument("--top", type=int, default=12, help="cheapest N rows per result (0: all)")
    cost.add_argument("--showback", metavar="TAG[,TAG]", help="group monthly cost by these tags")
    cost.add_argument("--focus", type=Path, metavar="CSV", help="write projected monthly costs as FOCUS 1.2 CSV")
    cost.set_defaults(func=cmd_cost)
