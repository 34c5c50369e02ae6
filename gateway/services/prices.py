"""A catalog model's price, as the forms, the API and the catalog file give it; the costs app
keeps the price history."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from accounts.caller import Caller
from core.errors import ValidationFailed
from costs import services as costs_services
from gateway.models import LanguageModel
from gateway.selectors import model_price


@dataclass(frozen=True)
class Price:
    """USD per million tokens. `cached_input_per_million=None`: cached input costs the input price.
    `is_free`: the model costs nothing, said in so many words (every amount zero)."""

    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None
    is_free: bool = False


FREE = Price(input_per_million=Decimal(0), output_per_million=Decimal(0), is_free=True)


def price_from(
    *,
    input_per_million: Decimal | None,
    output_per_million: Decimal | None,
    cached_input_per_million: Decimal | None = None,
    is_free: bool | None = None,
) -> Price | None:
    """A price from optional form or API fields: none given -> None; input and output go together;
    `is_free` alone marks the model free (with amounts, they must be zero)."""
    amounts = (input_per_million, output_per_million, cached_input_per_million)
    if is_free:
        for name, value in zip(
            ("input_per_million", "output_per_million", "cached_input_per_million"), amounts, strict=True
        ):
            if value:
                raise ValidationFailed(
                    f"A free model costs nothing: leave {name} empty or zero, or unset is_free.", param=name
                )
        return FREE
    if all(value is None for value in amounts):
        return None
    for name, value in (("input_per_million", input_per_million), ("output_per_million", output_per_million)):
        if value is None:
            raise ValidationFailed(
                f"{name} is required with a price: give input_per_million and output_per_million "
                "(USD per million tokens), or is_free.",
                param=name,
            )
    for name, value in (
        ("input_per_million", input_per_million),
        ("output_per_million", output_per_million),
        ("cached_input_per_million", cached_input_per_million),
    ):
        if value is not None and value < 0:
            raise ValidationFailed(f"{name} must be zero or more (USD per million tokens).", param=name)
    return Price(
        input_per_million=Decimal(input_per_million or 0),  # both checked above; `or` is for mypy
        output_per_million=Decimal(output_per_million or 0),
        cached_input_per_million=cached_input_per_million,
    )


def model_price_current(*, model: LanguageModel) -> Price | None:
    """The catalog model's price in force now (None: it has none)."""
    current = model_price(model=model, at=timezone.now())
    if current is None:
        return None
    return Price(
        input_per_million=current.input_per_million,
        output_per_million=current.output_per_million,
        cached_input_per_million=current.cached_input_per_million,
        is_free=current.is_free,
    )


def model_price_set(*, caller: Caller | None, model: LanguageModel, price: Price) -> bool:
    """Price the model from now on unless that is its price already (then nothing is written)."""
    if model_price_current(model=model) == price:
        return False
    costs_services.price_set(
        caller=caller,
        model=model,
        input_per_million=price.input_per_million,
        output_per_million=price.output_per_million,
        cached_input_per_million=price.cached_input_per_million,
        is_free=price.is_free,
        effective_from=timezone.now(),
    )
    return True
