"""Catalog entries as typed values, built once by an entry point (seed_catalog, the catalog
file) and applied by `catalog_apply`."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.models import ModelTier, RoutingPolicyKind
from gateway.services.prices import Price


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    base_url: str
    api_key: str | None = None  # None: leave the stored key as it is
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 60.0
    max_retries: int = 2
    retry_budget_seconds: float = 20.0
    is_enabled: bool = True


@dataclass(frozen=True)
class ModelSpec:
    name: str
    provider: str
    provider_model: str
    context_window: int = 8192
    tier: str = ModelTier.MEDIUM
    fallbacks: tuple[str, ...] = ()
    is_enabled: bool = True
    price: Price | None = None


@dataclass(frozen=True)
class RoutingSpec:
    application: str
    team: str | None = None  # the application's team by name; default: the catalog's team
    policy: str = RoutingPolicyKind.FIXED
    model: str = ""
    fallbacks: tuple[str, ...] = ()
    only_if_unset: bool = False  # seed defaults without overwriting a choice made since
