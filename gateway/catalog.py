"""Which provider serves a model name for a team, cached per process.

The catalog changes rarely: one generation token covers all of it, bumped by every
provider, model or routing change (services call `catalog_changed()`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from core import crypto
from core.generation_cache import GenerationCache
from gateway.models import LanguageModel

_cache = GenerationCache("gateway-catalog")
_SUBJECT = "all"


@dataclass(frozen=True)
class ProviderConfig:
    id: int
    name: str
    base_url: str
    api_key: str
    connect_timeout_seconds: float
    read_timeout_seconds: float
    max_retries: int
    retry_budget_seconds: float


@dataclass(frozen=True)
class ServedModel:
    id: int
    name: str
    provider_model: str
    context_window: int
    tier: str
    fallbacks: tuple[str, ...]
    provider: ProviderConfig


def catalog_changed() -> None:
    _cache.bump(_SUBJECT)


def _load_model(team_id: int, name: str) -> ServedModel | None:
    # The team's own entry wins over a shared one of the same name.
    candidates = (
        LanguageModel.objects.filter(Q(team_id=team_id) | Q(team__isnull=True), name=name, is_enabled=True)
        .filter(provider__is_enabled=True)
        .select_related("provider")
        .order_by("team_id")  # NULLs sort last on PostgreSQL and first on SQLite: pick explicitly below
    )
    chosen = None
    for candidate in candidates:
        if candidate.team_id == team_id or chosen is None:
            chosen = candidate
    if chosen is None:
        return None
    provider = chosen.provider
    return ServedModel(
        id=chosen.id,
        name=chosen.name,
        provider_model=chosen.provider_model,
        context_window=chosen.context_window,
        tier=chosen.tier,
        fallbacks=tuple(chosen.fallbacks or ()),
        provider=ProviderConfig(
            id=provider.id,
            name=provider.name,
            base_url=provider.base_url,
            api_key=crypto.decrypt(provider.api_key_encrypted) if provider.api_key_encrypted else "",
            connect_timeout_seconds=provider.connect_timeout_seconds,
            read_timeout_seconds=provider.read_timeout_seconds,
            max_retries=provider.max_retries,
            retry_budget_seconds=provider.retry_budget_seconds,
        ),
    )


def model_for(*, team_id: int, name: str) -> ServedModel | None:
    """The enabled model `name` for the team (its own, else shared), or None."""
    return _cache.get_or_load(
        subject=_SUBJECT, selector=("model", team_id, name), load=lambda: _load_model(team_id, name)
    )


def visible_model_names(*, team_id: int) -> list[str]:
    """Names a team can call (for GET /v1/models), its own and shared, enabled."""
    return _cache.get_or_load(
        subject=_SUBJECT,
        selector=("names", team_id),
        load=lambda: sorted(
            set(
                LanguageModel.objects.filter(
                    Q(team_id=team_id) | Q(team__isnull=True), is_enabled=True, provider__is_enabled=True
                ).values_list("name", flat=True)
            )
        ),
    )
