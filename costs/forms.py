"""Input validation for the budget pages. Forms validate like the API's serializers; the
services (costs.services) check the rest (scope values, downgrade model) and act."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from core.ids import parse_whole_number
from costs.models import DEFAULT_THRESHOLDS, BudgetAction, BudgetPeriodKind, BudgetScope

AMOUNT_MESSAGE = "amount_usd must be more than zero (USD per period)."
THRESHOLD_MESSAGE = "Each threshold is a whole percent from 1 to 100, separated by commas, such as 50, 80, 100."
MAX_THRESHOLDS = 10
MAX_ALERT_EMAILS = 20


class _BudgetFields(forms.Form):
    """The fields a budget's create and edit forms share."""

    id_prefix = "budget"

    name = forms.CharField(max_length=200)
    amount_usd = forms.DecimalField(
        label="Amount (USD per period)",
        max_digits=14,
        decimal_places=8,
        error_messages={"max_digits": "amount_usd must be less than 1,000,000 USD per period."},
    )
    thresholds = forms.CharField(
        max_length=100,
        initial=", ".join(str(value) for value in DEFAULT_THRESHOLDS),
        help_text="Alert at these percents of the amount.",
    )
    action = forms.ChoiceField(choices=BudgetAction.choices, initial=BudgetAction.BLOCK, help_text="At the limit.")
    downgrade_model = forms.CharField(
        max_length=200, required=False, help_text="For action downgrade: the cheaper model to call at the limit."
    )
    alert_emails = forms.CharField(max_length=2000, required=False, help_text="Comma-separated email addresses.")
    webhook_url = forms.URLField(max_length=500, required=False, assume_scheme="https")
    is_enabled = forms.BooleanField(required=False, initial=True, label="Enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)

    def clean_amount_usd(self) -> Decimal:
        value = self.cleaned_data["amount_usd"]
        if value <= 0:
            raise ValidationError(AMOUNT_MESSAGE)
        return Decimal(value)

    def clean_thresholds(self) -> list[int]:
        parts = [part.strip() for part in str(self.cleaned_data["thresholds"]).split(",") if part.strip()]
        if not parts or len(parts) > MAX_THRESHOLDS:
            raise ValidationError(f"Give 1 to {MAX_THRESHOLDS} thresholds. {THRESHOLD_MESSAGE}")
        values = []
        for part in parts:
            threshold = parse_whole_number(part, maximum=100)
            if threshold is None or threshold < 1:
                raise ValidationError(f"'{part}' is not a threshold. {THRESHOLD_MESSAGE}")
            values.append(threshold)
        return sorted(set(values))

    def clean_alert_emails(self) -> list[str]:
        emails = [part.strip() for part in str(self.cleaned_data["alert_emails"]).split(",") if part.strip()]
        if len(emails) > MAX_ALERT_EMAILS:
            raise ValidationError(f"Give at most {MAX_ALERT_EMAILS} email addresses.")
        for email in emails:
            try:
                validate_email(email)
            except ValidationError:
                raise ValidationError(f"'{email}' is not an email address.") from None
        return emails


class BudgetCreateForm(_BudgetFields):
    # An id rather than a choice of teams: a team outside the caller's teams must be reported
    # as missing (404) by the selector, and a team where the caller lacks the right as refused
    # (403) by the service, not both as an invalid choice.
    team = forms.IntegerField(min_value=1, max_value=2**63 - 1, widget=forms.Select)
    scope = forms.ChoiceField(choices=BudgetScope.choices, initial=BudgetScope.TEAM)
    scope_value = forms.CharField(
        max_length=256,
        required=False,
        help_text="Application id, API key id, end user, model name or tag key=value; empty for the team.",
    )
    period = forms.ChoiceField(choices=BudgetPeriodKind.choices, initial=BudgetPeriodKind.MONTHLY)

    field_order = ["team", "name", "scope", "scope_value", "period", "amount_usd"]

    def offer_teams(self, teams: list[tuple[int, str]]) -> None:
        widget = self.fields["team"].widget
        assert isinstance(widget, forms.Select)
        widget.choices = teams


class BudgetUpdateForm(_BudgetFields):
    """Scope and period are fixed once created (the spend counted belongs to them)."""

    def __init__(self, *args: Any, budget_id: int, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"budget{budget_id}_%s")
        super().__init__(*args, **kwargs)


def budget_initial(budget: Any) -> dict[str, Any]:
    return {
        "name": budget.name,
        "amount_usd": budget.amount_usd,
        "thresholds": ", ".join(str(value) for value in budget.thresholds),
        "action": budget.action,
        "downgrade_model": budget.downgrade_model,
        "alert_emails": ", ".join(budget.alert_emails),
        "webhook_url": budget.webhook_url,
        "is_enabled": budget.is_enabled,
    }
