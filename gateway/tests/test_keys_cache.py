"""API keys cached per gateway process, refused on the next request once revoked."""

from __future__ import annotations

from unittest import mock

import openai
import pytest

from accounts.keys import parse_prefix
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from core import generation_cache
from core.errors import AuthenticationRequired
from core.generation_cache import request_step
from gateway import keys
from gateway.tests.conftest import model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import reply
from observability.models import Call

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_a_key_revoked_through_the_service_is_refused_on_the_next_gateway_request(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    fake_upstream.enqueue(reply("Hello"))
    gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)  # the gateway caches the key
    [served] = stored_calls(expected=1)
    api_key = ApiKey.objects.get(prefix=parse_prefix(gateway_client.secret))

    api_key_revoke(caller=None, api_key=api_key)
    with pytest.raises(openai.AuthenticationError) as refused:
        gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert refused.value.status_code == 401
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "api_key_revoked"
    assert stored_calls() == [served]
    assert len(fake_upstream.chat_requests()) == 1


def test_a_cached_key_costs_no_query_and_no_shared_read_beyond_the_epoch(team_a, django_assert_num_queries):
    _, secret = api_key_create(caller=None, application=team_a.application, name="hot")
    with request_step():
        first = keys.authenticate(f"Bearer {secret}")

    with (
        mock.patch.object(generation_cache, "shared_cache", wraps=generation_cache.shared_cache) as shared,
        django_assert_num_queries(0),
        request_step(),
    ):
        again = keys.authenticate(f"Bearer {secret}")

    assert again is first
    assert [call.args[0] for call in shared.get.call_args_list] == [generation_cache.EPOCH_KEY]


def test_a_key_revoked_in_another_process_is_refused_by_the_next_step_and_nothing_is_touched(team_a):
    api_key, secret = api_key_create(caller=None, application=team_a.application, name="soon revoked")
    with request_step():
        keys.authenticate(f"Bearer {secret}")
    api_key_revoke(caller=None, api_key=ApiKey.objects.get(pk=api_key.pk))
    before = ApiKey.objects.values().get(pk=api_key.pk)

    with pytest.raises(AuthenticationRequired) as refused, request_step():
        keys.authenticate(f"Bearer {secret}")

    assert refused.value.code == "api_key_revoked"
    assert ApiKey.objects.values().get(pk=api_key.pk) == before
    assert Call.objects.count() == 0
