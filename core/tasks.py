from __future__ import annotations

import socket
from typing import Any

from celery import shared_task
from django.utils import timezone

from core.models import WorkerHeartbeat


@shared_task(bind=True, acks_late=True, ignore_result=True)
def worker_heartbeat(self: Any) -> str:
    """Record that a worker is alive; /readyz shows how long ago one was seen."""
    hostname = self.request.hostname or socket.gethostname()
    WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults={"seen_at": timezone.now()})
    return str(hostname)
