from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.caller import caller_for_user
from accounts.models import Membership, Role
from accounts.services import membership_update
from core.errors import ApplicationError
from core.testing import requires_postgresql


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

    threads = [
        threading.Thread(target=demote, args=(first_admin, second_admin)),
        threading.Thread(target=demote, args=(second_admin, first_admin)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["Conflict", "demoted"]
    assert Membership.objects.filter(team=world.team, role=Role.ADMIN).count() == 1
