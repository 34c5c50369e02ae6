"""Writes for prices and budgets, and the functions the gateway calls on its hot path.

The gateway imports from here only:
- `price_for`, `call_cost`, `worst_case_cost`, `ModelUnpriced`, `price_set`, `prices_changed`,
  `list_prices_adopt` (costs.pricing); `budgets_apply`
- `budget_reserve`, `budget_settle`, `budget_settle_many`, `budget_release`, `Reservation`,
  `BudgetExceeded` (costs.budgets)
- `rollups_apply` (costs.rollups)
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts import roles as account_roles
from accounts.caller import Caller
from accounts.selectors import api_key_is_in_team, application_is_in_team
from compliance.services import audit_record
from core import egress
from core.errors import ValidationFailed
from core.ids import parse_whole_number
from costs import permissions, secrets
from costs.budgets import (
    BudgetExceeded,
    Reservation,
    applicable_rules,
    budget_release,
    budget_reservations_release,
    budget_reserve,
    budget_settle,
    budget_settle_many,
    budgets_changed,
)
from costs.models import (
    Budget,
    BudgetAction,
    BudgetPeriod,
    BudgetScope,
    CostRollup,
    Notification,
    RollupDimension,
    RollupGranularity,
    usd_to_units,
)
from costs.periods import period_bounds
from costs.pricing import (
    ModelUnpriced,
    call_cost,
    catalog_model_id,
    known_models,
    list_prices_adopt,
    price_for,
    price_set,
    prices_changed,
    worst_case_cost,
)
from costs.rollups import rollups_apply

if TYPE_CHECKING:
    from accounts.models import Team

__all__ = [
    "BudgetExceeded",
    "ModelUnpriced",
    "Reservation",
    "budget_create",
    "budget_delete",
    "budget_release",
    "budget_reservations_release",
    "budget_reserve",
    "budget_settle",
    "budget_settle_many",
    "budget_update",
    "budgets_apply",
    "call_cost",
    "catalog_model_id",
    "list_prices_adopt",
    "price_for",
    "price_set",
    "prices_changed",
    "rollups_apply",
    "worst_case_cost",
]

logger = logging.getLogger(__name__)


# Budgets ---------------------------------------------------------------------------


def budgets_apply(
    *, team_id: int, application_id: int, api_key_id: int | None, end_user: str, model: str, metadata: dict[str, Any]
) -> bool:
    """Whether any enabled budget applies to such a call (from the per-process budget cache)."""
    _, rules = applicable_rules(
        team_id=team_id,
        application_id=application_id,
        api_key_id=api_key_id,
        end_user=end_user,
        model=model,
        metadata=metadata or {},
    )
    return bool(rules)


_AUDIT_ACTIONS = {
    "created": "budget.create",
    "updated": "budget.update",
    "deleted": "budget.delete",
    "webhook secret rotated": "budget.webhook_secret_rotate",
}


def _record_budget_change(*, caller: Caller | None, action: str, budget: Budget, changes: dict[str, Any]) -> None:
    """The one place every budget write passes through: it goes on the audit trail."""
    audit_record(
        actor=caller,
        action=_AUDIT_ACTIONS.get(action, f"budget.{action}"),
        target_type="budget",
        target_id=str(budget.id),
        team_id=budget.team_id,
        after={name: value for name, value in changes.items() if "secret" not in name},
        metadata={"budget": budget.name},
    )
    logger.info(
        "budget %s",
        action,
        extra={
            "budget_id": budget.id,
            "team_id": budget.team_id,
            "actor": caller.label if caller is not None else "system",
            "changes": sorted(changes),
        },
    )


def _validate_thresholds(thresholds: list[int]) -> list[int]:
    if not isinstance(thresholds, list) or not thresholds:
        raise ValidationFailed(
            "thresholds must be a non-empty list of percents such as [50, 80, 100].", param="thresholds"
        )
    for value in thresholds:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise ValidationFailed(
                f"Each threshold must be a whole percent from 1 to 100; {value!r} is not.", param="thresholds"
            )
    return sorted(set(thresholds))


def _validate_scope(*, team: Team, scope: str, scope_value: str) -> str:
    value = (scope_value or "").strip()
    if scope not in BudgetScope.values:
        raise ValidationFailed(f"Unknown scope '{scope}'; use one of: {', '.join(BudgetScope.values)}.", param="scope")
    if scope == BudgetScope.TEAM:
        if value:
            raise ValidationFailed("A team budget takes no scope_value; leave it empty.", param="scope_value")
        return ""
    if not value:
        raise ValidationFailed(f"A {scope} budget needs a scope_value naming the {scope}.", param="scope_value")
    if scope == BudgetScope.APPLICATION:
        application_id = parse_whole_number(value)
        if application_id is None or not application_is_in_team(application_id=application_id, team_id=team.id):
            raise ValidationFailed(
                f"scope_value must be the id of an application of team {team.id}; '{value}' is not.",
                param="scope_value",
            )
    elif scope == BudgetScope.API_KEY:
        api_key_id = parse_whole_number(value)
        if api_key_id is None or not api_key_is_in_team(key_id=api_key_id, team_id=team.id):
            raise ValidationFailed(
                f"scope_value must be the id of an API key of team {team.id}; '{value}' is not.", param="scope_value"
            )
    elif scope == BudgetScope.METADATA:
        tag, separator, _ = value.partition("=")
        if not separator or not tag:
            raise ValidationFailed(
                "A metadata budget's scope_value is a tag 'key=value', such as 'feature=search'.", param="scope_value"
            )
    return value


def _validate_action(*, team_id: int, action: str, downgrade_model: str) -> str:
    model = (downgrade_model or "").strip()
    if action == BudgetAction.DOWNGRADE:
        if not model:
            raise ValidationFailed(
                "A downgrade budget needs downgrade_model: the cheaper model to call at the limit.",
                param="downgrade_model",
            )
        if price_for(team_id=team_id, model=model, at=timezone.now()) is None:
            models = ", ".join(known_models(team_id=team_id, at=timezone.now()))
            raise ValidationFailed(
                f"Unknown downgrade model '{model}': it has no price. Use one of: {models}.", param="downgrade_model"
            )
        return model
    if model:
        raise ValidationFailed(
            "downgrade_model applies only to action 'downgrade'; leave it empty.", param="downgrade_model"
        )
    return ""


def _validate_webhook_url(url: str) -> str:
    """An http(s) URL the egress policy lets the server reach ("" for none)."""
    url = (url or "").strip()
    if not url:
        return ""
    try:
        egress.check_url(url)
    except egress.EgressRefused as refused:
        raise ValidationFailed(f"webhook_url is not allowed: {refused.reason}", param="webhook_url") from None
    return url


def _validate_amount(amount_usd: Decimal) -> Decimal:
    if amount_usd <= 0:
        raise ValidationFailed("amount_usd must be more than zero (USD per period).", param="amount_usd")
    if amount_usd >= 1_000_000:
        raise ValidationFailed("amount_usd must be less than 1,000,000 USD per period.", param="amount_usd")
    return amount_usd


def _spent_so_far(*, budget: Budget, start: datetime) -> int:
    """What the budget's scope already spent in the current period, from the hourly rollups,
    so that a budget created mid-period starts from the real spend (metadata tags are not
    rolled up: those start from zero)."""
    dimension = {
        BudgetScope.TEAM: (RollupDimension.TEAM, str(budget.team_id)),
        BudgetScope.APPLICATION: (RollupDimension.APPLICATION, budget.scope_value),
        BudgetScope.API_KEY: (RollupDimension.API_KEY, budget.scope_value),
        BudgetScope.END_USER: (RollupDimension.END_USER, budget.scope_value),
        BudgetScope.MODEL: (RollupDimension.MODEL, budget.scope_value),
    }.get(BudgetScope(budget.scope))
    if dimension is None:
        return 0
    total = CostRollup.objects.filter(
        team_id=budget.team_id,
        granularity=RollupGranularity.HOUR,
        dimension=dimension[0],
        key=dimension[1],
        bucket_start__gte=start,
    ).aggregate(total=Sum("cost_units"))["total"]
    return int(total or 0)


def budget_create(
    *,
    caller: Caller | None,
    team: Team,
    name: str,
    scope: str,
    scope_value: str = "",
    period: str,
    amount_usd: Decimal,
    thresholds: list[int] | None = None,
    action: str = BudgetAction.BLOCK,
    downgrade_model: str = "",
    alert_emails: list[str] | None = None,
    webhook_url: str = "",
    is_enabled: bool = True,
) -> tuple[Budget, str]:
    """Create a budget; returns it with its webhook signing secret (shown once)."""
    if caller is not None:
        caller.require_permission(permissions.ADD_BUDGET, team_id=team.id, action="create budgets")
    scope_value = _validate_scope(team=team, scope=scope, scope_value=scope_value)
    secret = secrets.webhook_secret_new()
    budget = Budget(
        team=team,
        name=name.strip(),
        scope=scope,
        scope_value=scope_value,
        period=period,
        amount_usd=_validate_amount(amount_usd),
        thresholds=_validate_thresholds(thresholds if thresholds is not None else [50, 80, 100]),
        action=action,
        downgrade_model=_validate_action(team_id=team.id, action=action, downgrade_model=downgrade_model),
        alert_emails=list(alert_emails or []),
        webhook_url=_validate_webhook_url(webhook_url),
        webhook_secret_encrypted=secrets.encrypt(secret),
        is_enabled=is_enabled,
    )
    with transaction.atomic():
        budget.save()
        start, end = period_bounds(period=budget.period, at=timezone.now(), time_zone=team.time_zone)
        BudgetPeriod.objects.create(
            budget=budget,
            period_start=start,
            period_end=end,
            limit_units=usd_to_units(budget.amount_usd),
            spent_units=_spent_so_far(budget=budget, start=start),
        )
        budgets_changed(team_id=team.id)
        _record_budget_change(caller=caller, action="created", budget=budget, changes={"created": True})
    return budget, secret


_UPDATABLE = (
    "name",
    "amount_usd",
    "thresholds",
    "action",
    "downgrade_model",
    "alert_emails",
    "webhook_url",
    "is_enabled",
)


def budget_update(*, caller: Caller | None, budget: Budget, **changes: Any) -> Budget:
    """Change a budget. Its scope and period cannot change (create a new budget instead):
    the spend counted so far belongs to them."""
    if caller is not None:
        caller.require_permission(permissions.CHANGE_BUDGET, team_id=budget.team_id, action="change budgets")
    unknown = sorted(set(changes) - set(_UPDATABLE))
    if unknown:
        raise ValidationFailed(
            f"{unknown[0]} cannot be changed; create a new budget for another scope or period.", param=unknown[0]
        )
    if "amount_usd" in changes:
        changes["amount_usd"] = _validate_amount(changes["amount_usd"])
    if "thresholds" in changes:
        changes["thresholds"] = _validate_thresholds(changes["thresholds"])
    action = changes.get("action", budget.action)
    if "action" in changes or "downgrade_model" in changes:
        downgrade_model = changes.get(
            "downgrade_model", budget.downgrade_model if action == BudgetAction.DOWNGRADE else ""
        )
        changes["downgrade_model"] = _validate_action(
            team_id=budget.team_id, action=action, downgrade_model=downgrade_model
        )
    if "webhook_url" in changes:
        changes["webhook_url"] = _validate_webhook_url(changes["webhook_url"])
    if "name" in changes:
        changes["name"] = str(changes["name"]).strip()
    with transaction.atomic():
        for name, value in changes.items():
            setattr(budget, name, value)
        budget.save()
        if "amount_usd" in changes:
            # The current and future periods get the new limit; past periods keep theirs.
            now = timezone.now()
            BudgetPeriod.objects.filter(budget=budget).exclude(period_end__lte=now).update(
                limit_units=usd_to_units(budget.amount_usd)
            )
        budgets_changed(team_id=budget.team_id)
        _record_budget_change(caller=caller, action="updated", budget=budget, changes=changes)
    return budget


def budget_delete(*, caller: Caller | None, budget: Budget) -> None:
    if caller is not None:
        caller.require_permission(permissions.DELETE_BUDGET, team_id=budget.team_id, action="delete budgets")
    with transaction.atomic():
        _record_budget_change(caller=caller, action="deleted", budget=budget, changes={"deleted": True})
        team_id = budget.team_id
        budget.delete()
        budgets_changed(team_id=team_id)


def budget_webhook_secret_rotate(*, caller: Caller | None, budget: Budget) -> str:
    if caller is not None:
        caller.require_permission(permissions.CHANGE_BUDGET, team_id=budget.team_id, action="change budgets")
    secret = secrets.webhook_secret_new()
    with transaction.atomic():
        budget.webhook_secret_encrypted = secrets.encrypt(secret)
        budget.save(update_fields=["webhook_secret_encrypted", "updated_at"])
        _record_budget_change(
            caller=caller, action="webhook secret rotated", budget=budget, changes={"webhook_secret": True}
        )
    return secret


def notification_mark_read(*, caller: Caller, team_id: int, notification_ids: list[int]) -> int:
    caller.require_permission(account_roles.VIEW_TEAM, team_id=team_id, action="read this team's notifications")
    return Notification.objects.filter(team_id=team_id, pk__in=notification_ids, read_at__isnull=True).update(
        read_at=timezone.now()
    )
