"""The resolution cache of each process is invalidated at once when a label moves anywhere."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.caller import caller_for_user
from prompts import selectors, services
from prompts.cache import ResolutionCache
from prompts.tests.conftest import version

pytestmark = pytest.mark.django_db


def test_a_label_move_invalidates_every_process_cache(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=2)
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 1))
    caller = caller_for_user(team_a.members["viewer"])
    # Two web processes: each has its own in-memory cache; they share Django's cache.
    process_one, process_two = ResolutionCache(), ResolutionCache()
    assert selectors.prompt_resolve(caller=caller, name="support", cache=process_one).version.version == 1
    assert selectors.prompt_resolve(caller=caller, name="support", cache=process_two).version.version == 1

    # Process one moves the label (the service runs in that process).
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 2))

    assert selectors.prompt_resolve(caller=caller, name="support", cache=process_two).version.version == 2
    assert selectors.prompt_resolve(caller=caller, name="support", cache=process_one).version.version == 2


def test_a_cache_hit_reads_no_database_row(team_a, make_prompt):
    prompt = make_prompt(team_a.team)
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 1))
    caller = caller_for_user(team_a.members["viewer"])
    cache = ResolutionCache()
    selectors.prompt_resolve(caller=caller, name="support", cache=cache)

    with CaptureQueriesContext(connection) as queries:
        resolved = selectors.prompt_resolve(caller=caller, name="support", cache=cache)

    assert resolved.version.version == 1
    assert len(queries) == 0


def test_a_new_version_moves_latest_in_every_process(team_a, make_prompt):
    prompt = make_prompt(team_a.team)
    caller = caller_for_user(team_a.members["viewer"])
    cache = ResolutionCache()
    assert selectors.prompt_resolve(caller=caller, name="support", label="latest", cache=cache).version.version == 1

    services.prompt_version_create(caller=None, prompt=prompt, messages=[{"role": "user", "content": "new"}])

    assert selectors.prompt_resolve(caller=caller, name="support", label="latest", cache=cache).version.version == 2
