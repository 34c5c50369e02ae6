"""Costs benchmark: the cost summary from rollups vs from raw calls, and the budget
reservation's added latency per call.

Run: .venv/bin/python bench/costs_bench.py [--calls N] [--iterations 50]

PostgreSQL when DATABASE_URL is set (a throwaway database `costs_bench_<pid>` is created on
that server and dropped at the end; default 1,000,000 calls), else SQLite in a temporary
directory (default 200,000 calls). Calls are spread over 90 days and recorded the way the
gateway's recorder does: bulk_create in chunks, then `rollups_apply` on the same chunk.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _measure  # noqa: E402 - needs ROOT on sys.path
from bench._meta import print_header  # noqa: E402 - needs ROOT on sys.path
from bench._setup import in_process_environment, throwaway_database  # noqa: E402 - needs ROOT on sys.path

in_process_environment("costs-bench-")
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
os.environ["API_THROTTLE_RATE"] = "100000000/minute"
os.environ.pop("CACHE_URL", None)
throwaway_database(f"costs_bench_{os.getpid()}")

import django  # noqa: E402 - the environment above must be set first

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.caller import caller_for_user  # noqa: E402
from accounts.models import Application, Membership, Role, Team  # noqa: E402
from costs import selectors, services  # noqa: E402
from observability.models import Call  # noqa: E402

MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini", "o4-mini", "smollm2-135m"]


def measure(function: Callable[[], object], iterations: int) -> tuple[float, float]:
    return _measure.measure(lambda _index: function(), iterations, warm_up=1)


def generate(*, team: Team, applications: list[Application], calls: int, now: datetime) -> float:
    random.seed(7)
    chunk = 10_000
    started = time.perf_counter()
    users = [f"user-{index}" for index in range(2000)]
    prompts = [f"prompt-{index}" for index in range(40)]
    for offset in range(0, calls, chunk):
        batch = []
        for _ in range(min(chunk, calls - offset)):
            model = random.choice(MODELS)
            created = now - timedelta(seconds=random.randint(0, 90 * 86400))
            input_tokens, output_tokens = random.randint(50, 4000), random.randint(10, 800)
            batch.append(
                Call(
                    created_at=created,
                    team=team,
                    application=random.choice(applications),
                    end_user=random.choice(users),
                    prompt_name=random.choice(prompts),
                    request_model=model,
                    response_model=model,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cost_usd=services.call_cost(
                        team_id=team.id, model=model, input_tokens=input_tokens, output_tokens=output_tokens, at=created
                    ),
                )
            )
        with transaction.atomic():
            Call.objects.bulk_create(batch)
            services.rollups_apply(calls=batch)
        print(f"\r  recorded {offset + len(batch):,} calls", end="", flush=True)
    print()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    is_postgresql = connection.vendor == "postgresql"
    parser.add_argument("--calls", type=int, default=1_000_000 if is_postgresql else 200_000)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--raw-iterations", type=int, default=5)
    arguments = parser.parse_args()
    print_header()

    call_command("migrate", verbosity=0)
    now = datetime.now(UTC)
    team = Team.objects.create(name="Bench")
    applications = [Application.objects.create(team=team, name=f"app-{index}") for index in range(10)]
    user = get_user_model().objects.create_user(username="manager", password="unused-bench-password")  # noqa: S106
    Membership.objects.create(user=user, team=team, role=Role.MANAGER)
    caller = caller_for_user(user)

    print(f"database: {connection.vendor}; generating {arguments.calls:,} calls over 90 days")
    seconds = generate(team=team, applications=applications, calls=arguments.calls, now=now)
    print(f"  {arguments.calls / seconds:,.0f} calls/s recorded (bulk insert + rollups_apply)")
    if is_postgresql:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    rows = []
    client = Client()
    client.force_login(user)
    for group_by, interval, days in (("model", "day", 30), ("application", "day", 90), ("user", "hour", 7)):
        query = selectors.summary_query(
            caller=caller, group_by=group_by, start=now - timedelta(days=days), end=now, interval=interval
        )
        rollup = measure(partial(selectors.cost_summary, query=query), arguments.iterations)
        raw = measure(partial(selectors.cost_summary_from_calls, query=query), arguments.raw_iterations)
        start = (now - timedelta(days=days)).date()
        url = f"/api/v1/costs/summary/?group_by={group_by}&interval={interval}&from={start}T00:00:00Z"
        endpoint = measure(partial(client.get, url), arguments.iterations)
        rows.append((f"{group_by}/{interval}, {days} days", rollup, endpoint, raw))

    print("\ncost summary, ms (p50 / p99)")
    print(f"{'query':<28}{'rollups (selector)':>22}{'rollups (endpoint)':>22}{'raw calls (selector)':>24}")
    for label, rollup, endpoint, raw in rows:
        print(
            f"{label:<28}{rollup[0]:>11.1f} / {rollup[1]:<8.1f}{endpoint[0]:>11.1f} / {endpoint[1]:<8.1f}"
            f"{raw[0]:>13.1f} / {raw[1]:<8.1f}"
        )

    budgeted = Team.objects.create(name="Budgeted")
    budgeted_app = Application.objects.create(team=budgeted, name="app")
    for scope, value in (("team", ""), ("application", str(budgeted_app.id)), ("model", "gpt-4o")):
        services.budget_create(
            caller=None,
            team=budgeted,
            name=scope,
            scope=scope,
            scope_value=value,
            period="daily",
            amount_usd=Decimal("100000"),
        )

    def reserve_and_settle(team_id: int, application_id: int) -> None:
        reservation = services.budget_reserve(
            team_id=team_id,
            application_id=application_id,
            api_key_id=None,
            end_user="u",
            model="gpt-4o",
            metadata={},
            amount=Decimal("0.01"),
            at=datetime.now(UTC),
        )
        services.budget_settle(reservation=reservation, actual=Decimal("0.005"))

    iterations = max(arguments.iterations * 20, 500)
    baseline = measure(lambda: None, iterations)
    no_budget = measure(lambda: reserve_and_settle(team.id, applications[0].id), iterations)
    three = measure(lambda: reserve_and_settle(budgeted.id, budgeted_app.id), iterations)
    print("\nbudget reservation per call, ms (p50 / p99)")
    print(f"  no-op baseline                      {baseline[0]:.3f} / {baseline[1]:.3f}")
    print(f"  reserve + settle, team without budgets {no_budget[0]:.3f} / {no_budget[1]:.3f}")
    print(f"  reserve + settle, 3 applicable budgets {three[0]:.3f} / {three[1]:.3f}")


if __name__ == "__main__":
    main()
