"""One rule for a request's id, whichever entry point (Django or the gateway's ASGI app) it came in by."""

from __future__ import annotations

import pytest

from core.logging import request_id_from


@pytest.mark.parametrize("supplied", ["req-12345678", "a" * 128, "trace:span.1_2-3"])
def test_a_sane_client_id_is_kept(supplied):
    assert request_id_from(supplied) == supplied


@pytest.mark.parametrize("supplied", [None, "", "short", "<script>", "a" * 129, "id with spaces", "ümlaut-1234"])
def test_anything_else_gets_a_new_id(supplied):
    request_id = request_id_from(supplied)

    assert request_id != supplied
    assert len(request_id) == 32
    assert int(request_id, 16) >= 0  # hex
    assert request_id_from(supplied) != request_id
