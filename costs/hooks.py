"""What costs asks the apps above it (they register the answers at start-up; core.hooks).

Prices belong to the gateway's catalog models, and the savings recommendations look at the
semantic cache's settings; costs sits below the gateway, so it asks through these questions
(`core.hooks.Question`: one receiver, its answer returned) instead of importing it.
The gateway registers the answers in its AppConfig.ready().
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from core.hooks import Question


class CatalogModel(Protocol):
    """A model of the gateway's catalog, as costs reads it (gateway.models.LanguageModel)."""

    @property
    def id(self) -> int: ...

    @property
    def team_id(self) -> int | None: ...  # None: the shared catalog

    @property
    def name(self) -> str: ...


class CacheSummary(Protocol):
    @property
    def is_on(self) -> bool: ...  # the cache answers the application's calls


# Every catalog model as (id, team id or None for the shared catalog, name); no arguments.
catalog_models: Question[[], Iterable[tuple[int, int | None, str]]] = Question("costs.catalog_models")

# The catalog model a team's catalog names so (team_id None: the shared catalog), or None:
# keywords `team_id`, `name`.
catalog_model_find: Question[..., CatalogModel | None] = Question("costs.catalog_model_find")

# The cache settings of these applications (an iterable of ids, positional): id -> summary.
cache_settings_summary: Question[[Iterable[int]], Mapping[int, CacheSummary]] = Question("costs.cache_settings_summary")
