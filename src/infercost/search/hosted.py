"""Hosted APIs as candidates: where each one is reached, what it charges, and what its rate limits let it carry.
A vendor's limits are its capacity: above them it answers 429, whatever its hardware could do."""

from __future__ import annotations

import os
from dataclasses import dataclass

from infercost.cost.catalog import Catalog, TokenPrice
from infercost.cost.fleet import demand_hours
from infercost.search.spec import ApiCandidate, StudySpec
from infercost.spec.deployment import OpenAIDeployment
from infercost.spec.workload import Demand


@dataclass(frozen=True)
class HostedApi:
    candidate: ApiCandidate
    price: TokenPrice
    deployment: OpenAIDeployment | None  # None: the catalog knows no endpoint for it
    requests_per_minute: float | None
    tokens_per_minute: float | None
    limits_source: str | None

    def not_measurable(self) -> str | None:
        """Why latency and quality cannot be measured through the endpoint (no URL, or no key in the environment),
        or None."""
        if self.deployment is None:
            return "no endpoint: give base_url for it in the study or the catalog"
        env = self.deployment.api_key_env
        if env and not os.environ.get(env):
            return f"no API key: set {env} to measure it"
        return None

    def limit_rps(self, tokens_per_request: float | None) -> tuple[float | None, str]:
        """Requests per second the published limits allow, and which limit binds."""
        limits = []
        if self.requests_per_minute:
            limits.append((self.requests_per_minute / 60, f"{self.requests_per_minute:g} requests/min"))
        if self.tokens_per_minute and tokens_per_request:
            limits.append((self.tokens_per_minute / 60 / tokens_per_request,
                           f"{self.tokens_per_minute:g} tokens/min at {tokens_per_request:.0f} tokens/request"))
        if not limits:
            return None, "no rate limit known (give requests_per_minute / tokens_per_minute for your tier)"
        rps, which = min(limits)
        return rps, f"rate limit {which}" + (f" ({self.limits_source})" if self.limits_source else "")


def hosted_api(spec: StudySpec, catalog: Catalog, name: str, source: str = "study") -> HostedApi:
    candidate = spec.space.api(name)
    price = catalog.api_price(name, source, "space.apis")
    url = candidate.base_url or price.base_url
    deployment = None
    if url:
        deployment = OpenAIDeployment(engine="openai", name=f"{name} API", model=candidate.served_model or price.model,
                                      base_url=url, api_key_env=candidate.api_key_env or price.api_key_env)
    own = candidate.requests_per_minute or candidate.tokens_per_minute
    return HostedApi(candidate=candidate, price=price, deployment=deployment,
                     requests_per_minute=candidate.requests_per_minute if own else price.requests_per_minute,
                     tokens_per_minute=candidate.tokens_per_minute if own else price.tokens_per_minute,
                     limits_source="the study" if own else price.limits_source)


def peak_rps(demand: Demand) -> float | None:
    """The busiest rate the plan must carry: the busiest hour the fleet is sized for (see `demand_hours`)."""
    hours = demand_hours(demand)
    return hours.peak_rps if hours is not None else None


def check_apis(spec: StudySpec, catalog: Catalog, source: str) -> None:
    """Every API the study names is in the catalog: one line naming the study file and the known names if not."""
    for i, candidate in enumerate(spec.space.apis):
        catalog.api_price(candidate.name, source, f"space.apis[{i}]")
