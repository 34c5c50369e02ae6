"""Exposures recorded from stored calls."""

from __future__ import annotations

import pytest

from accounts.caller import caller_for_user
from observability.models import Call
from observability.services import calls_store
from observability.tests.factories import CallRecordFactory
from prompts import services
from prompts.models import ExperimentExposure
from prompts.tests.conftest import version

pytestmark = pytest.mark.django_db


def test_an_end_user_longer_than_the_subject_column_is_cut_to_it(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=2)
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 1))
    manager = caller_for_user(team_a.members["manager"])
    experiment = services.experiment_create(
        caller=manager,
        prompt=prompt,
        name="tone",
        variants=[
            services.VariantSpec(name="A", version=version(prompt, 1), weight=1),
            services.VariantSpec(name="B", version=version(prompt, 2), weight=1),
        ],
    )
    services.experiment_start(caller=manager, experiment=experiment)
    end_user = "u" * 256  # the longest end user a call holds

    (call,) = calls_store(
        records=[
            CallRecordFactory.build(
                world=team_a,
                end_user=end_user,
                experiment_id=experiment.id,
                experiment_variant="B",
                request_model="gpt-4o-mini",
            )
        ]
    )

    exposure = ExperimentExposure.objects.get(experiment=experiment)
    assert exposure.subject == "u" * 200
    assert exposure.call_id == str(call.id)
    assert Call.objects.get(id=call.id).end_user == end_user
