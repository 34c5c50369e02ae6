"""The one place that holds the periodic task schedule (celery beat)."""

BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "core.tasks.worker_heartbeat", "schedule": 30.0},
}

# Costs: a safety net for budget threshold alerts, the hourly spend anomaly, daily recommendations.
BEAT_SCHEDULE["costs-budget-alerts-check"] = {"task": "costs.tasks.budget_alerts_check", "schedule": 300.0}
BEAT_SCHEDULE["costs-spend-anomalies-check"] = {"task": "costs.tasks.spend_anomalies_check", "schedule": 3600.0}
BEAT_SCHEDULE["costs-recommendations-refresh"] = {"task": "costs.tasks.recommendations_refresh", "schedule": 86400.0}
# Reservations nothing settled (a gateway process killed mid-call): released once older than
# any call can last (GATEWAY_TOTAL_TIMEOUT_SECONDS plus costs.budgets.RECLAIM_MARGIN).
BEAT_SCHEDULE["costs-budget-reservations-reclaim"] = {
    "task": "costs.tasks.budget_reservations_reclaim",
    "schedule": 60.0,
}

# Compliance: seal audit events into the hash chain within seconds, sign the head every
# minute, purge call content past each team's retention period hourly.
BEAT_SCHEDULE.update(
    {
        "audit-seal": {"task": "compliance.tasks.audit_seal", "schedule": 5.0},
        "audit-checkpoint": {"task": "compliance.tasks.audit_checkpoint", "schedule": 60.0},
        "audit-retention-purge": {"task": "compliance.tasks.retention_purge", "schedule": 3600.0},
    }
)

# Evaluations: results a killed worker held are released and their chunks queued again.
BEAT_SCHEDULE["evaluations-runs-resume"] = {"task": "evaluations.tasks.eval_runs_resume", "schedule": 30.0}
