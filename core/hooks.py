"""Hooks: how a lower floor tells a higher one that something happened, without importing it.

The floors (docs/architecture.md) let imports point down only. Where the lower floor must
let a higher one act (the API's error handler putting an access denial on the audit trail,
prompts telling the semantic cache that a label moved), the lower floor declares a `Hook`
and the higher app registers a receiver in its `AppConfig.ready()`. Receivers run in
registration order, synchronously, in the caller's transaction: a hook is a function call
whose target is chosen at start-up, not a fire-and-forget signal.

A `Question` is a hook with exactly one receiver whose answer is returned (costs asking the
gateway for a catalog model, observability asking costs what a call cost).

A hook marked `required` refuses to run with no receiver (ImproperlyConfigured) rather
than silently doing nothing: an audit record must never be skipped because an app is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured

P = ParamSpec("P")
R = TypeVar("R")


class Hook(Generic[P]):
    def __init__(self, name: str, *, required: bool = False) -> None:
        self.name = name
        self.required = required
        self._receivers: list[Callable[P, object]] = []

    def register(self, receiver: Callable[P, object]) -> Callable[P, object]:
        """Add a receiver (once: registering the same function again is a no-op)."""
        if receiver not in self._receivers:
            self._receivers.append(receiver)
        return receiver

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        if not self._receivers and self.required:
            raise ImproperlyConfigured(
                f"No receiver is registered for the hook {self.name!r}; the app that handles it is not installed."
            )
        for receiver in self._receivers:
            receiver(*args, **kwargs)


class Question(Generic[P, R]):
    """A hook answered by one receiver: calling it returns the receiver's answer.

    Always required: a question nobody answers raises ImproperlyConfigured rather than
    inventing an answer. Registering a second, different receiver is a configuration error too.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._receiver: Callable[P, R] | None = None

    def register(self, receiver: Callable[P, R]) -> Callable[P, R]:
        if self._receiver is not None and self._receiver is not receiver:
            raise ImproperlyConfigured(f"The hook {self.name!r} takes one receiver; {self._receiver!r} answers it.")
        self._receiver = receiver
        return receiver

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._receiver is None:
            raise ImproperlyConfigured(
                f"No receiver is registered for the hook {self.name!r}; the app that answers it is not installed."
            )
        return self._receiver(*args, **kwargs)
