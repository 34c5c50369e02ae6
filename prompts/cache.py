"""Per-process resolution cache, invalidated in every process when a label moves
(core.generation_cache: one generation token per prompt name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from core.generation_cache import GenerationCache

T = TypeVar("T")


def generation_bump(*, team_id: int, name: str) -> None:
    """Invalidate prompt `name` of `team_id` in every process."""
    resolution_cache.bump((team_id, name))


class ResolutionCache(GenerationCache):
    def __init__(self) -> None:
        super().__init__("prompts")

    def get_or_load(  # type: ignore[override]  # keyed by team and prompt name
        self, *, team_id: int, name: str, selector: tuple[Any, ...], load: Callable[[], T]
    ) -> T:
        return super().get_or_load(subject=(team_id, name), selector=selector, load=load)


# The process-wide cache used by selectors.prompt_resolve.
resolution_cache = ResolutionCache()
