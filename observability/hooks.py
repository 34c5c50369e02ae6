"""What observability tells, and asks, the apps above it (they register receivers at start-up).

The call recorder's storing transaction sets off work that belongs to higher floors (costs'
rollups and budget settlement, prompts' experiment exposures); observability declares the
hooks here and never imports those apps (core.hooks explains the pattern).

`Question` is a hook with exactly one receiver whose answer the caller uses (core.hooks.Hook
returns nothing); costs.hooks uses it too.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Generic, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured

from core.hooks import Hook

P = ParamSpec("P")
R = TypeVar("R")


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


# New calls were stored (inside the storing transaction, once per call: a replayed record
# is never passed again): keyword `calls`, the stored Call rows. Costs adds them to its
# rollups, prompts records the experiment exposures they served.
calls_stored: Hook[...] = Hook("observability.calls_stored", required=True)

# Budget reservations closed by stored calls are due (inside the same transaction, last
# before its commit, so that the budget rows stay locked briefly): keyword `settlements`, the
# records' `budget_settlement` values. Costs settles them.
settlements_due: Hook[...] = Hook("observability.settlements_due", required=True)

# What an ingested call cost, for a record that does not state it: keywords `team_id`,
# `model`, `input_tokens`, `output_tokens`, `cached_tokens`, `at`. Costs answers with its prices.
call_cost: Question[..., Decimal] = Question("observability.call_cost")
