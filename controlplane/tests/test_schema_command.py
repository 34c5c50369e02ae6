"""`manage.py spectacular` writes the same schema as /api/schema/, the gateway's /v1 included."""

from __future__ import annotations

from io import StringIO

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_schema_command_includes_the_gateway_endpoints(client):
    out = StringIO()

    call_command("spectacular", "--validate", stdout=out)

    written = yaml.safe_load(out.getvalue())
    assert "/v1/chat/completions" in written["paths"]
    assert "/v1/models" in written["paths"]
    assert "/api/v1/teams/{team_id}/invitations/" in written["paths"]
    served = client.get("/api/schema/?format=json").json()
    assert sorted(written["paths"]) == sorted(served["paths"])
