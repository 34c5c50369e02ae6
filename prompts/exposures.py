"""Experiment exposures from the gateway's call records: every call served by an experiment's
variant becomes one exposure, with the call's outcome (latency, cost, success), so that the
results page compares variants on real traffic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from observability.types import CallStatus
from prompts.models import ExperimentExposure, ExperimentVariant

if TYPE_CHECKING:
    from observability.models import Call


def exposures_record_for_calls(*, calls: Sequence[Call]) -> list[ExperimentExposure]:
    """Receiver of observability.hooks.calls_stored (prompts.apps): called in the transaction that
    stores the calls, so never twice for a call."""
    served = [call for call in calls if call.experiment_id and call.experiment_variant]
    if not served:
        return []
    variants = {
        (variant.experiment_id, variant.name): variant.id
        for variant in ExperimentVariant.objects.filter(experiment_id__in={call.experiment_id for call in served})
    }
    subject_length = ExperimentExposure._meta.get_field("subject").max_length
    exposures = []
    for call in served:
        experiment_id = int(call.experiment_id or 0)
        variant_id = variants.get((experiment_id, call.experiment_variant))
        if variant_id is None:
            continue  # the variant was deleted since: nothing to attribute the call to
        exposures.append(
            ExperimentExposure(
                experiment_id=experiment_id,
                variant_id=variant_id,
                # end_user holds up to 256 characters; the subject column fewer.
                subject=(call.end_user or str(call.id))[:subject_length],
                call_id=str(call.id),
                latency_ms=call.latency_ms,
                cost_usd=float(call.cost_usd),
                is_success=call.status == CallStatus.SUCCESS,
            )
        )
    return ExperimentExposure.objects.bulk_create(exposures)
