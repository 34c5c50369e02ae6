"""Input of the evaluation pages, validated once here (types, sizes, JSON syntax); the services
(evaluations.services) check the rest (names, permissions, clearance, scorer configurations)
and act. Field names follow the API's bodies so refusals naming a `param` land on the field."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from core.api.serializers import MAX_INTEGER
from core.classification import Clearance
from core.ids import MAX_ID
from evaluations import limits
from evaluations.scorers import Example
from evaluations.types import ScorerKind, TargetKind

BUILTIN_PREFIX = "kind:"
CONFIGURED_PREFIX = "scorer:"


def _json(value: str, *, field: str, expect: type | None = None, what: str = "") -> Any:
    """Parsed JSON of a text field, or a message naming the line and column of the mistake."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"{field}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})."
        ) from None
    if expect is not None and not isinstance(parsed, expect):
        raise ValidationError(f"{field}: must be {what}.")
    return parsed


def scorer_pairs(values: list[str]) -> list[tuple[str, str]]:
    """Chosen scorer options as (source, value): ("kind", "exact_match") or ("scorer", "12")."""
    return [(value.partition(":")[0], value.partition(":")[2]) for value in values]


class DatasetCreateForm(forms.Form):
    team = forms.IntegerField(min_value=1, max_value=MAX_ID)
    name = forms.CharField(max_length=limits.MAX_NAME_CHARS)
    description = forms.CharField(max_length=limits.MAX_DESCRIPTION_CHARS, required=False, widget=forms.Textarea)
    classification = forms.TypedChoiceField(coerce=int, choices=Clearance.choices, initial=Clearance.INTERNAL)
    item_schema = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='Optional JSON Schema every item must satisfy, e.g. {"required": ["expected_output"]}.',
    )

    def clean_item_schema(self) -> dict[str, Any] | None:
        raw = self.cleaned_data["item_schema"].strip()
        return _json(raw, field="item_schema", expect=dict, what="a JSON object") if raw else None


class UploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL (one item per line) or CSV with an input column; all lines or none.")
    message = forms.CharField(max_length=500, required=False)

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size is not None and upload.size > limits.MAX_IMPORT_BYTES:
            raise ValidationError(
                f"The file has {upload.size:,} bytes; at most {limits.MAX_IMPORT_BYTES:,} may be imported at once. "
                "Split it."
            )
        return upload


class FromCallsForm(forms.Form):
    dataset = forms.IntegerField(min_value=1, max_value=MAX_ID)
    call_ids = forms.CharField(widget=forms.MultipleHiddenInput, required=False)
    message = forms.CharField(max_length=500, required=False)

    def __init__(self, *args: Any, call_ids: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call_id_values = call_ids  # one hidden input per id: the calls list posts its checked boxes

    def clean_call_ids(self) -> list[str]:
        values = self.call_id_values
        if not values:
            raise ValidationError("Select at least one call on the calls list.")
        if len(values) > limits.MAX_ITEMS_PER_BATCH:
            raise ValidationError(f"At most {limits.MAX_ITEMS_PER_BATCH:,} calls may be copied at once.")
        return values


class ScorerCreateForm(forms.Form):
    team = forms.IntegerField(min_value=1, max_value=MAX_ID)
    name = forms.CharField(max_length=limits.MAX_NAME_CHARS)
    kind = forms.ChoiceField(choices=ScorerKind.choices)
    config = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='JSON, e.g. {"pattern": "^order \\\\d+$"} for a regular expression.',
    )
    description = forms.CharField(max_length=limits.MAX_DESCRIPTION_CHARS, required=False)

    def clean_config(self) -> dict[str, Any]:
        raw = self.cleaned_data["config"].strip()
        return _json(raw, field="config", expect=dict, what="a JSON object") if raw else {}


class ScorerTryForm(forms.Form):
    """One example scored by a configured scorer (`scorer`) or a built-in kind with a config."""

    scorer = forms.CharField(max_length=64)  # "scorer:<id>" or "kind:<kind>"
    team = forms.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    config = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    input = forms.CharField(required=False, max_length=limits.MAX_TEXT_CHARS, widget=forms.Textarea(attrs={"rows": 2}))
    output = forms.CharField(
        strip=False, required=False, max_length=limits.MAX_SCORED_OUTPUT_CHARS, widget=forms.Textarea(attrs={"rows": 3})
    )
    expected_output = forms.CharField(
        strip=False, required=False, max_length=limits.MAX_TEXT_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    expected_facts = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One fact per line."
    )
    context = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One context document per line."
    )

    def clean_scorer(self) -> tuple[str, str]:
        value = self.cleaned_data["scorer"]
        if value.startswith(CONFIGURED_PREFIX) and value[len(CONFIGURED_PREFIX) :].isdigit():
            return "scorer", value[len(CONFIGURED_PREFIX) :]
        if value.startswith(BUILTIN_PREFIX) and value[len(BUILTIN_PREFIX) :] in ScorerKind.values:
            return "kind", value[len(BUILTIN_PREFIX) :]
        raise ValidationError("Choose a scorer from the list.")

    def clean_config(self) -> dict[str, Any]:
        raw = self.cleaned_data["config"].strip()
        return _json(raw, field="config", expect=dict, what="a JSON object") if raw else {}

    def clean_expected_facts(self) -> list[str]:
        facts = [line.strip() for line in self.cleaned_data["expected_facts"].splitlines() if line.strip()]
        if len(facts) > limits.MAX_FACTS:
            raise ValidationError(f"At most {limits.MAX_FACTS} facts.")
        return facts

    def clean_context(self) -> list[dict[str, str]]:
        lines = [line.strip() for line in self.cleaned_data["context"].splitlines() if line.strip()]
        if len(lines) > limits.MAX_DOCUMENTS:
            raise ValidationError(f"At most {limits.MAX_DOCUMENTS} documents.")
        return [{"id": str(index + 1), "text": text} for index, text in enumerate(lines)]

    def example(self) -> Example:
        data = self.cleaned_data
        return Example.build(
            input=data["input"],
            output=data["output"],
            expected=data["expected_output"] or None,
            facts=data["expected_facts"],
            documents=data["context"],
        )


class _ScorersChoiceForm(forms.Form):
    """A form with a `scorers` multiple choice whose options the page gives (the caller's scorers)."""

    def __init__(self, *args: Any, scorer_choices: list[tuple[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["scorers"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = scorer_choices


class RunCreateForm(_ScorersChoiceForm):
    dataset = forms.IntegerField(min_value=1, max_value=MAX_ID)
    dataset_version = forms.IntegerField(
        min_value=1, max_value=MAX_INTEGER, required=False, help_text="Empty: the current version."
    )
    name = forms.CharField(max_length=limits.MAX_NAME_CHARS, required=False)
    target_kind = forms.ChoiceField(choices=TargetKind.choices, initial=TargetKind.RECORDED, label="Target")
    prompt = forms.CharField(max_length=limits.MAX_NAME_CHARS, required=False)
    label = forms.CharField(max_length=64, required=False, help_text="A prompt's label (or give a version).")
    version = forms.IntegerField(min_value=1, max_value=MAX_INTEGER, required=False, label="Prompt version")
    model = forms.CharField(max_length=256, required=False, help_text="Required for a model target.")
    column = forms.CharField(
        max_length=200, required=False, initial="expected_output", help_text="expected_output or metadata.<name>."
    )
    scorers = forms.MultipleChoiceField(choices=[], help_text="Each scorer scores every answer.")
    repeats = forms.IntegerField(min_value=1, max_value=limits.MAX_RUN_REPEATS, initial=1)

    def clean_scorers(self) -> list[tuple[str, str]]:
        chosen = scorer_pairs(self.cleaned_data["scorers"])
        if len(chosen) > limits.MAX_RUN_SCORERS:
            raise ValidationError(f"At most {limits.MAX_RUN_SCORERS} scorers per run.")
        return chosen


class GateCreateForm(_ScorersChoiceForm):
    prompt = forms.IntegerField(min_value=1, max_value=MAX_ID)
    label = forms.CharField(max_length=64, initial="production", help_text="A protected label of the prompt.")
    dataset = forms.IntegerField(min_value=1, max_value=MAX_ID)
    dataset_version = forms.IntegerField(
        min_value=1,
        max_value=MAX_INTEGER,
        required=False,
        help_text="Empty: the dataset's current version at each check.",
    )
    scorers = forms.MultipleChoiceField(choices=[])
    min_score = forms.FloatField(
        min_value=0, max_value=1, required=False, help_text="The mean each scorer must reach (0 to 1); empty: none."
    )
    model = forms.CharField(max_length=256, required=False, help_text="For versions that name no model.")
    requires_no_regression = forms.BooleanField(
        required=False, initial=True, label="Refuse a significant regression against the version on the label"
    )

    def clean_scorers(self) -> list[tuple[str, str]]:
        return scorer_pairs(self.cleaned_data["scorers"])
