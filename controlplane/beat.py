"""The one place that holds the periodic task schedule (celery beat)."""

BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "controlplane.tasks.worker_heartbeat", "schedule": 30.0},
}
