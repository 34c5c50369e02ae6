from __future__ import annotations

import threading
from functools import partial

import pytest
from django.db import connection

from accounts.caller import caller_for_user
from accounts.models import Membership, Role
from accounts.services import membership_update
from core.errors import ApplicationError
from core.testing import requires_postgresql
from core.tests.threads import run_at_once


@requires_postgresql()
@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(make_team):
    world = make_team()
    first_admin = world.members[Role.ADMIN]
    second_admin = world.members[Role.MANAGER]
    Membership.objects.filter(user=second_admin, team=world.team).update(role=Role.ADMIN)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor, target) -> None:
        try:
            caller = caller_for_user(actor)
            membership = Membership.objects.get(user=target, team=world.team)
            barrier.wait()
            membership_update(caller=caller, membership=membership, role=Role.VIEWER)
            outcomes.append("demoted")
        except ApplicationError as error:
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    run_at_once([partial(demote, first_admin, second_admin), partial(demote, second_admin, first_admin)], timeout=30)

    assert sorted(outcomes) == ["Conflict", "demoted"]
    assert Membership.objects.filter(team=world.team, role=Role.ADMIN).count() == 1
