"""Filling a dataset from a file (JSONL, CSV) or from recorded calls; each fill is one new version.

Calls are read through observability's selectors only (`call_get`, `call_list`, `call_view`), so
the content copied is what the caller may see: a call classified above the caller's clearance is
refused when named by id and skipped when matched by a filter (never copied masked); spans its
team's rules classify above the caller's clearance are copied redacted. The item's classification
is the call's.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from core.errors import NotFound, PermissionDenied, ValidationFailed
from evaluations import limits
from evaluations.importing import parse_csv, parse_jsonl
from evaluations.items import MESSAGE_ROLES, parse_item
from evaluations.models import DatasetItem
from evaluations.services.datasets import NewItem, Provenance, dataset_items_change
from evaluations.types import ItemSource
from observability import selectors as call_selectors

if TYPE_CHECKING:
    from accounts.caller import Caller
    from evaluations.models import Dataset, DatasetVersion
    from observability.models import Call

IMPORT_FORMATS = ("jsonl", "csv")


def import_format(file_name: str, declared: str | None) -> str:
    if declared:
        if declared not in IMPORT_FORMATS:
            raise ValidationFailed(f"format must be one of: {', '.join(IMPORT_FORMATS)}.", param="format")
        return declared
    suffix = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix == "csv":
        return "csv"
    raise ValidationFailed(
        f"Cannot tell the format of {file_name[:100]!r}: name the file .jsonl or .csv, or pass format.", param="format"
    )


def dataset_import(
    *,
    caller: Caller,
    dataset: Dataset,
    file_name: str,
    data: bytes,
    file_format: str | None = None,
    message: str = "",
    request: HttpRequest | None = None,
) -> DatasetVersion:
    """All lines or none: a bad line refuses the whole file, naming each bad line."""
    chosen = import_format(file_name, file_format)
    parsed = parse_jsonl(data) if chosen == "jsonl" else parse_csv(data)
    file_label = file_name.replace("\x00", "")[-255:]
    items = [
        NewItem(
            data=item, provenance=Provenance(source=ItemSource.IMPORT, file=file_label, line=line), where=f"line {line}"
        )
        for line, item in parsed
    ]
    return dataset_items_change(
        caller=caller, dataset=dataset, add=items, message=message or f"import {file_label}", request=request
    )


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _call_item(call: Call, messages: list[Any], response_text: str) -> dict[str, Any]:
    kept = [
        {"role": message["role"], "content": _message_text(message.get("content"))}
        for message in messages
        if isinstance(message, dict) and message.get("role") in MESSAGE_ROLES
    ]
    metadata = {
        "call_created_at": call.created_at.isoformat() if call.created_at else None,
        "model": call.response_model or call.request_model,
        "prompt": call.prompt_name or None,
        "prompt_version": call.prompt_version,
    }
    raw: dict[str, Any] = {
        "input": {"messages": kept},
        "metadata": {key: value for key, value in metadata.items() if value is not None},
    }
    if call.status == "success" and response_text:
        raw["expected_output"] = response_text
    return raw


@dataclass(frozen=True)
class FromCallsResult:
    version: DatasetVersion | None
    added: int
    skipped_above_clearance: int
    skipped_already_present: int
    skipped_invalid: list[str]


def dataset_add_from_calls(
    *,
    caller: Caller,
    dataset: Dataset,
    call_ids: Sequence[Any] = (),
    filters: Any = None,
    limit: int = 100,
    message: str = "",
    request: HttpRequest | None = None,
) -> FromCallsResult:
    """Copy calls of the dataset's team into it as items: named by id (every one must be
    visible in full to the caller, else nothing is copied) or matched by an
    observability.selectors.CallFilters (newest first, up to `limit`; calls above the caller's
    clearance, already in the dataset or over the item bounds are skipped and counted)."""
    if bool(call_ids) == (filters is not None):
        raise ValidationFailed("Give either call_ids or filter, not both and not neither.", param="call_ids")
    if len(call_ids) > limits.MAX_ITEMS_PER_BATCH or not 1 <= limit <= limits.MAX_ITEMS_PER_BATCH:
        raise ValidationFailed(f"At most {limits.MAX_ITEMS_PER_BATCH:,} calls may be copied at once.", param="limit")
    by_id = bool(call_ids)
    if by_id:
        calls = []
        for raw_id in dict.fromkeys(str(value) for value in call_ids):
            call = call_selectors.call_get(caller=caller, call_id=raw_id)
            if call.team_id != dataset.team_id:
                raise NotFound(f"No call with id {call.id} exists in the dataset's team.", param="call_ids")
            calls.append(call)
    else:
        # The list's rows defer message bodies; load them whole in the same query.
        queryset = call_selectors.call_list(caller=caller, filters=filters).filter(team_id=dataset.team_id).defer(None)
        calls = list(queryset[:limit])
    present = set(
        DatasetItem.objects.filter(
            dataset=dataset, removed_in_version__isnull=True, source_call_id__in=[call.id for call in calls]
        ).values_list("source_call_id", flat=True)
    )
    new_items: list[NewItem] = []
    above, invalid = [], []
    for call in calls:
        if call.id in present:
            continue
        view = call_selectors.call_view(caller=caller, call=call)
        if view.is_masked:
            above.append(str(call.id))
            continue
        try:
            data = parse_item(_call_item(call, view.request_messages, view.response_text))
        except ValidationFailed as error:
            invalid.append(f"call {call.id}: {error.message}")
            continue
        data = dataclasses.replace(data, classification=int(call.classification))
        provenance = Provenance(source=ItemSource.CALL, call_id=uuid.UUID(str(call.id)))
        new_items.append(NewItem(data=data, provenance=provenance, where=f"call {call.id}"))
    if by_id and above:
        raise PermissionDenied(
            f"Call(s) {', '.join(above[:10])} are classified above your clearance; nothing was copied. "
            "Leave them out or ask someone cleared for them.",
            code="above_clearance",
        )
    if by_id and invalid:
        raise ValidationFailed(
            "Nothing was copied: " + "; ".join(invalid[: limits.MAX_REPORTED_ERRORS]), param="call_ids"
        )
    version = None
    if new_items:
        version = dataset_items_change(
            caller=caller,
            dataset=dataset,
            add=new_items,
            message=message or f"{len(new_items)} item(s) from calls",
            request=request,
        )
    return FromCallsResult(
        version=version,
        added=len(new_items),
        skipped_above_clearance=len(above),
        skipped_already_present=len(present),
        skipped_invalid=invalid[: limits.MAX_REPORTED_ERRORS],
    )
