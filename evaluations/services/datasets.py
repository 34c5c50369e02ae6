"""Writes of datasets and their items. Every change to items (add, update, remove, import, copy
from calls, or a batch of them) makes exactly one new DatasetVersion (see evaluations.models);
every write is audited. Services take typed values (evaluations.items.ItemData) parsed at the edge.

Lock order: the dataset row (SELECT ... FOR UPDATE) first, then its item rows; two writers of
one dataset queue on the dataset row, so version numbers never collide.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from compliance.services import audit_record
from core.classification import Clearance
from core.errors import Conflict, PermissionDenied, ValidationFailed
from evaluations import limits
from evaluations.items import ItemData
from evaluations.models import Dataset, DatasetItem, DatasetVersion
from evaluations.permissions import CHANGE_DATASET
from evaluations.scorers.jsonschemas import schema_problem, schema_validator
from evaluations.selectors import dataset_is_visible, item_is_visible
from evaluations.types import ItemSource

if TYPE_CHECKING:
    from accounts.caller import Caller


@dataclass(frozen=True)
class Provenance:
    source: str = ItemSource.MANUAL
    file: str = ""
    line: int | None = None
    call_id: uuid.UUID | None = None
    correction_id: str = ""


def _text(value: str, *, param: str, limit: int, required: bool = False) -> str:
    if "\x00" in value:
        raise ValidationFailed(f"{param} cannot contain a NUL character.", param=param)
    if len(value) > limit:
        raise ValidationFailed(f"{param} has {len(value):,} characters; at most {limit:,} are allowed.", param=param)
    if required and not value.strip():
        raise ValidationFailed(f"{param} must not be empty.", param=param)
    return value.strip() if required else value


def _require_clearance(caller: Caller, team_id: int, classification: int, *, what: str) -> None:
    clearance = caller.clearance_in(team_id)
    if classification > clearance:
        raise PermissionDenied(
            f"{what} is classified {Clearance(classification).label}, above your clearance "
            f"({Clearance(clearance).label}); choose a classification at or below it.",
            code="above_clearance",
        )


def _require_writable(caller: Caller, dataset: Dataset, *, action: str) -> None:
    caller.require_permission(CHANGE_DATASET, team_id=dataset.team_id, action=action)
    if not dataset_is_visible(caller=caller, dataset=dataset):
        raise PermissionDenied(
            f"Dataset {dataset.pk} is classified above your clearance; you cannot change it.", code="above_clearance"
        )


def _schema(item_schema: dict[str, Any] | None) -> dict[str, Any]:
    if not item_schema:
        return {}
    problem = schema_problem(item_schema)
    if problem:
        raise ValidationFailed(f"item_schema: {problem}.", param="item_schema")
    return item_schema


def dataset_create(
    *,
    caller: Caller,
    team_id: int,
    name: str,
    description: str = "",
    classification: int = Clearance.INTERNAL,
    item_schema: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> Dataset:
    caller.require_permission(CHANGE_DATASET, team_id=team_id, action="create datasets")
    name = _text(name, param="name", limit=limits.MAX_NAME_CHARS, required=True)
    description = _text(description, param="description", limit=limits.MAX_DESCRIPTION_CHARS)
    _require_clearance(caller, team_id, classification, what="The dataset")
    schema = _schema(item_schema)
    with transaction.atomic():
        if Dataset.objects.filter(team_id=team_id).count() >= limits.MAX_DATASETS_PER_TEAM:
            raise ValidationFailed(
                f"Your team has {limits.MAX_DATASETS_PER_TEAM:,} datasets, the most allowed; archive or reuse one.",
                code="too_many_datasets",
            )
        try:
            with transaction.atomic():
                dataset = Dataset.objects.create(
                    team_id=team_id,
                    name=name,
                    description=description,
                    classification=classification,
                    item_schema=schema,
                )
        except IntegrityError:
            raise Conflict(
                f"Your team already has a dataset named {name!r}; choose another name.", param="name"
            ) from None
        DatasetVersion.objects.create(dataset=dataset, number=1, message="created", **_author(caller), item_count=0)
        audit_record(
            actor=caller,
            action="dataset.create",
            target_type="evaluations.dataset",
            target_id=str(dataset.pk),
            team_id=team_id,
            after={"name": name, "classification": Clearance(classification).label, "has_item_schema": bool(schema)},
            request=request,
        )
    return dataset


def _author(caller: Caller) -> dict[str, Any]:
    return {"author_user": caller.user, "author_label": caller.label[:200]}


def dataset_update(
    *,
    caller: Caller,
    dataset: Dataset,
    name: str | None = None,
    description: str | None = None,
    classification: int | None = None,
    item_schema: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> Dataset:
    """Change a dataset's own fields (not its items: no new version). A new item schema applies
    to items added or changed from now on."""
    _require_writable(caller, dataset, action="change datasets")
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _text(name, param="name", limit=limits.MAX_NAME_CHARS, required=True)
    if description is not None:
        changes["description"] = _text(description, param="description", limit=limits.MAX_DESCRIPTION_CHARS)
    if classification is not None:
        _require_clearance(caller, dataset.team_id, classification, what="The dataset")
        changes["classification"] = classification
    if item_schema is not None:
        changes["item_schema"] = _schema(item_schema)
    before = {field: getattr(dataset, field) for field in changes}
    with transaction.atomic():
        for field, value in changes.items():
            setattr(dataset, field, value)
        try:
            with transaction.atomic():
                dataset.save(update_fields=[*changes, "updated_at"])
        except IntegrityError:
            raise Conflict(f"Your team already has a dataset named {changes.get('name')!r}.", param="name") from None
        audit_record(
            actor=caller,
            action="dataset.update",
            target_type="evaluations.dataset",
            target_id=str(dataset.pk),
            team_id=dataset.team_id,
            before={field: value for field, value in before.items() if field != "item_schema"},
            after={field: value for field, value in changes.items() if field != "item_schema"},
            metadata={"item_schema_changed": "item_schema" in changes},
            request=request,
        )
    return dataset


def dataset_archive(*, caller: Caller, dataset: Dataset, request: HttpRequest | None = None) -> Dataset:
    """Archived datasets leave lists and take no new items; their versions stay readable."""
    _require_writable(caller, dataset, action="archive datasets")
    if dataset.is_archived:
        return dataset
    with transaction.atomic():
        dataset.is_archived = True
        dataset.save(update_fields=["is_archived", "updated_at"])
        audit_record(
            actor=caller,
            action="dataset.archive",
            target_type="evaluations.dataset",
            target_id=str(dataset.pk),
            team_id=dataset.team_id,
            request=request,
        )
    return dataset


@dataclass(frozen=True)
class NewItem:
    data: ItemData
    provenance: Provenance = Provenance()
    where: str = ""  # how a refusal names it: "items[3]", "line 7", "call <id>"


def _check_schema(dataset: Dataset, items: Sequence[NewItem]) -> None:
    if not dataset.item_schema:
        return
    validator = schema_validator(dataset.item_schema)
    problems = []
    for item in items:
        try:
            error = next(iter(validator.iter_errors(item.data.as_document())), None)
        except TimeoutError:
            error_text = "a pattern of the item schema took too long on this item"
        else:
            if error is None:
                continue
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            error_text = f"does not match the dataset's item schema at {where}: {error.message[:200]}"
        problems.append(f"{item.where}: {error_text}")
    if problems:
        shown = "; ".join(problems[: limits.MAX_REPORTED_ERRORS])
        raise ValidationFailed(
            f"Nothing was changed: {len(problems)} item(s) do not fit. {shown}", code="item_schema_mismatch"
        )


def dataset_items_change(
    *,
    caller: Caller,
    dataset: Dataset,
    add: Sequence[NewItem] = (),
    update: Mapping[uuid.UUID, NewItem] | None = None,
    remove: Sequence[uuid.UUID] = (),
    message: str = "",
    request: HttpRequest | None = None,
) -> DatasetVersion:
    """Add, update (same key, new state) and remove items in one new version, all or nothing."""
    update = dict(update or {})
    _require_writable(caller, dataset, action="change dataset items")
    message = _text(message, param="message", limit=500)
    operations = len(add) + len(update) + len(remove)
    if operations == 0:
        raise ValidationFailed("Nothing to change: give items to add, update or remove.", param="items")
    if operations > limits.MAX_ITEMS_PER_BATCH:
        raise ValidationFailed(
            f"{operations:,} changes in one request; at most {limits.MAX_ITEMS_PER_BATCH:,} are allowed. Split it.",
            code="too_many_items",
            param="items",
        )
    removed = set(remove)
    if len(removed) != len(remove) or removed & set(update):
        raise ValidationFailed("An item key appears twice among the updates and removals.", param="remove")
    new_items = [*add, *update.values()]
    for item in new_items:
        classification = item.data.classification
        if classification is not None:
            _require_clearance(caller, dataset.team_id, classification, what=f"{item.where or 'An item'}")
    _check_schema(dataset, new_items)

    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.is_archived:
            raise Conflict(f"Dataset {dataset.pk} is archived; it takes no changes.", code="dataset_archived")
        number = locked.current_version + 1
        keys = set(update) | removed
        live = {
            item.key: item
            for item in DatasetItem.objects.filter(dataset=locked, key__in=keys, removed_in_version__isnull=True)
        }
        missing = sorted(str(key) for key in keys - set(live))
        if missing:
            raise ValidationFailed(
                f"Dataset {dataset.pk} has no item(s) {', '.join(missing[:10])} at its current version "
                f"{locked.current_version}.",
                code="item_not_found",
                param="key",
            )
        hidden = [
            str(key) for key, item in live.items() if not item_is_visible(caller=caller, dataset=locked, item=item)
        ]
        if hidden:
            raise PermissionDenied(
                f"Item(s) {', '.join(sorted(hidden)[:10])} are classified above your clearance; "
                "you cannot change them.",
                code="above_clearance",
            )
        item_count = locked.item_count + len(add) - len(removed)
        if item_count > limits.MAX_ITEMS_PER_DATASET:
            raise ValidationFailed(
                f"The dataset would hold {item_count:,} items; at most {limits.MAX_ITEMS_PER_DATASET:,} are allowed.",
                code="too_many_items",
                param="items",
            )
        if keys:
            DatasetItem.objects.filter(dataset=locked, key__in=keys, removed_in_version__isnull=True).update(
                removed_in_version=number
            )
        rows = [_row(locked, item, number) for item in add]
        rows += [_row(locked, item, number, key=key) for key, item in update.items()]
        DatasetItem.objects.bulk_create(rows, batch_size=1000)
        version = DatasetVersion.objects.create(
            dataset=locked,
            number=number,
            message=message,
            item_count=item_count,
            added_count=len(add),
            changed_count=len(update),
            removed_count=len(removed),
            **_author(caller),
        )
        locked.current_version = number
        locked.item_count = item_count
        locked.save(update_fields=["current_version", "item_count", "updated_at"])
        sources = sorted({item.provenance.source for item in new_items})
        audit_record(
            actor=caller,
            action="dataset.items_change",
            target_type="evaluations.dataset",
            target_id=str(dataset.pk),
            team_id=dataset.team_id,
            after={"version": number, "item_count": item_count},
            metadata={
                "added": len(add),
                "changed": len(update),
                "removed": len(removed),
                "sources": sources,
                "files": sorted({item.provenance.file for item in new_items if item.provenance.file})[:5],
            },
            request=request,
        )
    dataset.current_version, dataset.item_count = number, item_count
    return version


def _row(dataset: Dataset, item: NewItem, number: int, *, key: uuid.UUID | None = None) -> DatasetItem:
    data, provenance = item.data, item.provenance
    return DatasetItem(
        dataset=dataset,
        key=key or uuid.uuid4(),
        added_in_version=number,
        input=data.input,
        expected_output=data.expected_output,
        expected_facts=data.expected_facts,
        context=data.context,
        tags=data.tags,
        metadata=data.metadata,
        classification=dataset.classification if data.classification is None else data.classification,
        source=provenance.source,
        source_file=provenance.file[:255],
        source_line=provenance.line,
        source_call_id=provenance.call_id,
        source_correction_id=provenance.correction_id[:64],
    )
