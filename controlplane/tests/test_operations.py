"""Health, readiness, metrics, request ids, JSON logs, deploy checks and a real worker."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path

import pytest

from core.models import WorkerHeartbeat
from core.tasks import worker_heartbeat
from gateway.tests.processes import manage

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_answers_without_a_database(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_database_and_broker(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_unreachable(client, settings):
    # Port 1 on loopback: nothing listens there, so the connection is refused.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error:")


def test_metrics_count_requests_by_route_in_prometheus_format(client):
    client.get("/healthz")
    client.get("/healthz")

    body = client.get("/metrics").content.decode()

    assert "# TYPE controlplane_http_requests_total counter" in body
    line = next(
        line
        for line in body.splitlines()
        if line.startswith('controlplane_http_requests_total{method="GET",route="healthz",status="200"}')
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2


def test_request_id_is_echoed_when_sane_and_replaced_when_not(client):
    supplied = client.get("/healthz", HTTP_X_REQUEST_ID="req-12345678")
    hostile = client.get("/healthz", HTTP_X_REQUEST_ID="<script>")

    assert supplied["X-Request-ID"] == "req-12345678"
    assert hostile["X-Request-ID"] != "<script>"
    assert len(hostile["X-Request-ID"]) == 32


def test_logs_are_json_lines_carrying_the_request_id(client):
    console = next(
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler)
        and handler.formatter is not None
        and "Json" in type(handler.formatter).__name__
    )
    buffer = io.StringIO()
    previous = console.setStream(buffer)
    try:
        response = client.get("/healthz", HTTP_X_REQUEST_ID="trace-abcdef01")
    finally:
        console.setStream(previous)

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    access = [line for line in lines if line.get("logger") == "controlplane.access"]
    assert response.status_code == 200
    assert access, "no access log line was written"
    assert access[-1]["request_id"] == "trace-abcdef01"
    assert access[-1]["status"] == 200
    assert access[-1]["path"] == "/healthz"


def test_production_settings_pass_check_deploy():
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "CACHE_URL", "CELERY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        DJANGO_SECRET_KEY="x7#kQ2!vL9@pR4$wT6^yU8&iO0*aS3(dF5)gH1-jK7+lZ9=xC2",
        DJANGO_ALLOWED_HOSTS="llmops.example.com",
        CONTROLPLANE_VAR_DIR=os.environ["CONTROLPLANE_VAR_DIR"],  # set by the test settings
    )

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_settings_refuse_to_start_without_a_secret_key_in_production():
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.celery_worker
def test_a_real_worker_runs_the_heartbeat_and_readyz_reports_it(celery_worker, client):
    worker_heartbeat.delay()

    deadline = time.monotonic() + 30
    while not WorkerHeartbeat.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)

    assert WorkerHeartbeat.objects.count() == 1
    assert client.get("/readyz").json()["checks"]["worker_last_seen_seconds"] is not None
