"""Reads, scoped to the caller's teams: prompts, versions, labels, resolution, rendering,
diffs and experiment results. The gateway resolves and renders through this module.

A prompt outside the caller's teams is reported as missing (NotFound), never as forbidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import Max, Prefetch, Q, QuerySet

from accounts import roles
from accounts.caller import Caller
from core.classification import Clearance
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.ids import parse_whole_number
from prompts import assignment, context, results
from prompts.cache import ResolutionCache, resolution_cache
from prompts.context import dropped_document_counts as dropped_document_counts  # re-exported for the gateway
from prompts.context import included_documents_level as included_documents_level  # re-exported for the gateway
from prompts.models import (
    Experiment,
    ExperimentStatus,
    ExperimentVariant,
    LabelHistory,
    Prompt,
    PromptLabel,
    PromptVersion,
)
from prompts.tokens import count_messages as count_messages  # re-exported for the gateway

DEFAULT_LABEL = "production"
LATEST = "latest"


# Prompts -------------------------------------------------------------------------------


def prompt_list(
    *,
    caller: Caller,
    team_id: int | None = None,
    search: str = "",
    tag: str = "",
    label: str = "",
) -> QuerySet[Prompt]:
    visible = [team for team in caller.team_ids if caller.has_permission(roles.VIEW_PROMPT, team_id=team)]
    queryset = (
        Prompt.objects.filter(team_id__in=visible)
        .select_related("team")
        .annotate(newest_version=Max("versions__number"))
        .prefetch_related(Prefetch("labels", queryset=PromptLabel.objects.select_related("version").order_by("name")))
    )
    if team_id is not None:
        queryset = queryset.filter(team_id=team_id)
    if search:
        queryset = queryset.filter(Q(name__icontains=search) | Q(description__icontains=search))
    if tag:
        # JSON containment is not portable to SQLite; tags are short, so match the quoted value.
        queryset = queryset.filter(tags__icontains=f'"{tag}"')
    if label:
        queryset = queryset.filter(labels__name=label)
    return queryset.order_by("name", "team_id")


def _team_for(*, caller: Caller, name: str, team_id: int | str | None) -> int:
    """The team whose prompt `name` the caller means."""
    if team_id not in (None, ""):
        try:
            wanted = int(team_id)
        except (TypeError, ValueError):
            raise ValidationFailed("team must be a team id (an integer).", param="team") from None
        if wanted not in caller.team_ids:
            raise NotFound(f"No prompt named '{name}' exists in your teams.")
        return wanted
    if len(caller.team_ids) == 1:
        return caller.team_ids[0]
    teams = list(Prompt.objects.filter(team_id__in=caller.team_ids, name=name).values_list("team_id", flat=True))
    if not teams:
        raise NotFound(f"No prompt named '{name}' exists in your teams.")
    if len(teams) > 1:
        raise ValidationFailed(
            f"Several of your teams have a prompt named '{name}' (teams {', '.join(map(str, sorted(teams)))}); "
            "pass ?team=<id> to say which.",
            param="team",
        )
    return teams[0]


def prompt_get(*, caller: Caller, name: str, team_id: int | str | None = None) -> Prompt:
    team = _team_for(caller=caller, name=name, team_id=team_id)
    caller.require_permission(roles.VIEW_PROMPT, team_id=team, action="view prompts")
    try:
        return Prompt.objects.select_related("team").get(team_id=team, name=name)
    except Prompt.DoesNotExist:
        raise NotFound(f"No prompt named '{name}' exists in your teams.") from None


def prompt_get_by_id(*, caller: Caller, prompt_id: int) -> Prompt:
    try:
        prompt = Prompt.objects.select_related("team").get(pk=prompt_id, team_id__in=caller.team_ids)
    except Prompt.DoesNotExist:
        raise NotFound(f"No prompt with id {prompt_id} exists in your teams.") from None
    caller.require_permission(roles.VIEW_PROMPT, team_id=prompt.team_id, action="view prompts")
    return prompt


def version_list(*, prompt: Prompt) -> QuerySet[PromptVersion]:
    return (
        PromptVersion.objects.filter(prompt=prompt)
        .select_related("author", "author_api_key")
        .prefetch_related(Prefetch("labels", queryset=PromptLabel.objects.order_by("name")))
        .order_by("-number")
    )


def version_ids_of_prompt(*, prompt_id: int) -> QuerySet[PromptVersion, int]:
    """The ids of every version of a prompt, unscoped, as a lazy query that can stand as a
    subquery (`prompt_version_id__in=...`): for the apps above prompts acting on a prompt they
    were told about (the semantic cache dropping entries when a label moved)."""
    return PromptVersion.objects.filter(prompt_id=prompt_id).values_list("id", flat=True)


def version_get(*, prompt: Prompt, number: int | str) -> PromptVersion:
    wanted = number if isinstance(number, int) else parse_whole_number(number)
    try:
        if wanted is None:
            raise PromptVersion.DoesNotExist
        return version_list(prompt=prompt).get(number=wanted)
    except PromptVersion.DoesNotExist:
        raise NotFound(f"'{prompt.name}' has no version {number}.", param="version") from None


# Classification ------------------------------------------------------------------------


def _clearance_refusal(
    *, team_id: int, prompt_name: str, number: int, classification: int, clearance: int
) -> PermissionDenied:
    needed = Clearance(classification).label
    error = PermissionDenied(
        f"Version {number} of '{prompt_name}' is classified {needed}: it needs {needed} clearance in the prompt's "
        f"team and yours is {Clearance(clearance).label}. Ask a team admin for {needed} clearance.",
        code="insufficient_clearance",
    )
    error.team_id = team_id  # type: ignore[attr-defined]  # read by the access-denial audit
    return error


def version_require_visible(*, caller: Caller, prompt: Prompt, version: PromptVersion) -> PromptVersion:
    """Refuse (PermissionDenied) a version whose classification is above the caller's clearance."""
    clearance = caller.clearance_in(prompt.team_id)
    if not version.is_visible_at(clearance):
        raise _clearance_refusal(
            team_id=prompt.team_id,
            prompt_name=prompt.name,
            number=version.number,
            classification=version.classification,
            clearance=clearance,
        )
    return version


def versions_masked_for(*, caller: Caller, prompt: Prompt, versions: Iterable[PromptVersion]) -> list[PromptVersion]:
    """The versions for a page: those above the caller's clearance keep their metadata but have
    their messages blanked in memory (`is_masked`); the rows are never saved (versions are immutable)."""
    clearance = caller.clearance_in(prompt.team_id)
    shown = []
    for version in versions:
        if not version.is_visible_at(clearance):
            version.is_masked = True
            version.messages = []
        shown.append(version)
    return shown


def label_list(*, prompt: Prompt) -> QuerySet[PromptLabel]:
    return PromptLabel.objects.filter(prompt=prompt).select_related("version", "prompt").order_by("name")


def label_get(*, prompt: Prompt, label: str) -> PromptLabel:
    found = label_list(prompt=prompt).filter(name=label).first()
    if found is None:
        raise NotFound(f"'{prompt.name}' has no label named '{label}'.", param="label")
    return found


def label_history(*, prompt: Prompt, label: str | None = None) -> QuerySet[LabelHistory]:
    queryset = LabelHistory.objects.filter(prompt=prompt).select_related(
        "from_version", "to_version", "actor_user", "actor_api_key"
    )
    if label is not None:
        queryset = queryset.filter(label=label)
    return queryset.order_by("-id")


# Resolution ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedVersion:
    team_id: int
    prompt_id: int
    prompt: str
    version_id: int
    version: int
    messages: list[dict[str, str]]
    params: dict[str, Any]
    variables: list[str]
    context_budget: dict[str, Any]
    content_hash: str
    classification: int


@dataclass(frozen=True)
class ResolvedVariant:
    id: int
    name: str
    weight: int
    version: ResolvedVersion


@dataclass(frozen=True)
class ResolvedExperiment:
    id: int
    name: str
    segment: dict[str, str]
    variants: tuple[ResolvedVariant, ...]


@dataclass(frozen=True)
class Resolution:
    """What a label (or version number) resolves to, before choosing an experiment variant."""

    version: ResolvedVersion
    label: str | None
    experiment: ResolvedExperiment | None


@dataclass(frozen=True)
class Assignment:
    experiment_id: int
    experiment: str
    variant: str


@dataclass(frozen=True)
class Resolved:
    """The version to serve to one subject."""

    version: ResolvedVersion
    label: str | None
    assignment: Assignment | None

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self.version)
        body["classification"] = Clearance(self.version.classification).label
        body["label"] = self.label
        body["experiment"] = asdict(self.assignment) if self.assignment else None
        return body


def _resolved_version(version: PromptVersion, prompt: Prompt) -> ResolvedVersion:
    return ResolvedVersion(
        team_id=prompt.team_id,
        prompt_id=prompt.id,
        prompt=prompt.name,
        version_id=version.id,
        version=version.number,
        messages=version.messages,
        params=version.params,
        variables=version.variables,
        context_budget=version.context_budget,
        content_hash=version.content_hash,
        classification=version.classification,
    )


def _load_resolution(*, team_id: int, name: str, label: str | None, number: int | None) -> Resolution:
    prompt = Prompt.objects.filter(team_id=team_id, name=name).first()
    if prompt is None:
        raise NotFound(f"No prompt named '{name}' exists in your teams.")
    if number is not None:
        version = PromptVersion.objects.filter(prompt=prompt, number=number).first()
        if version is None:
            raise NotFound(f"'{name}' has no version {number}.", param="version")
        return Resolution(version=_resolved_version(version, prompt), label=None, experiment=None)
    assert label is not None
    if label == LATEST:
        version = PromptVersion.objects.filter(prompt=prompt).order_by("-number").first()
        if version is None:
            raise NotFound(f"'{name}' has no versions yet; create one first.", param="label")
        return Resolution(version=_resolved_version(version, prompt), label=label, experiment=None)
    found = PromptLabel.objects.filter(prompt=prompt, name=label).select_related("version").first()
    if found is None:
        names = list(PromptLabel.objects.filter(prompt=prompt).order_by("name").values_list("name", flat=True))
        raise NotFound(
            f"'{name}' has no label named '{label}'; its labels are: {', '.join(names) or 'none'} (and 'latest').",
            param="label",
        )
    experiment = (
        Experiment.objects.filter(prompt=prompt, label=label, status=ExperimentStatus.RUNNING)
        .prefetch_related(Prefetch("variants", queryset=ExperimentVariant.objects.select_related("version")))
        .first()
    )
    resolved_experiment = None
    if experiment is not None:
        resolved_experiment = ResolvedExperiment(
            id=experiment.id,
            name=experiment.name,
            segment=dict(experiment.segment),
            variants=tuple(
                ResolvedVariant(
                    id=variant.id,
                    name=variant.name,
                    weight=variant.weight,
                    version=_resolved_version(variant.version, prompt),
                )
                for variant in experiment.variants.all()
            ),
        )
    return Resolution(version=_resolved_version(found.version, prompt), label=label, experiment=resolved_experiment)


def prompt_resolve(
    *,
    caller: Caller,
    name: str,
    label: str | None = None,
    version: int | str | None = None,
    team_id: int | str | None = None,
    subject: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    cache: ResolutionCache | None = None,
) -> Resolved:
    """The version to serve: by number, or by label (default production), or an experiment's
    sticky variant when the label has a running experiment and `subject` is given."""
    if label is not None and version not in (None, ""):
        raise ValidationFailed("Pass either label or version, not both.", param="version")
    number: int | None = None
    if version not in (None, ""):
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise ValidationFailed("version must be a version number (an integer).", param="version") from None
    wanted_label = None if number is not None else (label or DEFAULT_LABEL)
    team = _team_for(caller=caller, name=name, team_id=team_id)
    caller.require_permission(roles.VIEW_PROMPT, team_id=team, action="resolve prompts")
    resolution = (cache or resolution_cache).get_or_load(
        team_id=team,
        name=name,
        selector=(wanted_label, number),
        load=lambda: _load_resolution(team_id=team, name=name, label=wanted_label, number=number),
    )
    experiment = resolution.experiment
    if experiment is not None and subject and assignment.matches_segment(experiment.segment, metadata or {}):
        index = assignment.assign(
            experiment_id=experiment.id, subject=subject, weights=[variant.weight for variant in experiment.variants]
        )
        chosen = experiment.variants[index]
        _require_clearance(caller=caller, version=chosen.version)
        return Resolved(
            version=chosen.version,
            label=resolution.label,
            assignment=Assignment(experiment_id=experiment.id, experiment=experiment.name, variant=chosen.name),
        )
    _require_clearance(caller=caller, version=resolution.version)
    return Resolved(version=resolution.version, label=resolution.label, assignment=None)


def _require_clearance(*, caller: Caller, version: ResolvedVersion) -> None:
    # Checked on every call, after the cache: the cached resolution is shared by all callers.
    clearance = caller.clearance_in(version.team_id)
    if version.classification > clearance:
        raise _clearance_refusal(
            team_id=version.team_id,
            prompt_name=version.prompt,
            number=version.version,
            classification=version.classification,
            clearance=clearance,
        )


def prompt_render(
    *,
    caller: Caller,
    resolved: Resolved,
    variables: Mapping[str, Any],
    documents: Sequence[Mapping[str, Any]] = (),
    history: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Rendered messages within the version's token budget, with the context report."""
    version = resolved.version
    _require_clearance(caller=caller, version=version)
    assembly = context.assemble(
        messages=version.messages,
        params=version.params,
        context_budget=version.context_budget,
        declared_variables=version.variables,
        variables=variables,
        documents=documents,
        history=history,
        clearance=caller.clearance_in(version.team_id),
    )
    return {
        **resolved.as_dict(),
        "messages": assembly.messages,
        "token_counts": assembly.token_counts,
        "context": assembly.report,
    }


# Experiments ---------------------------------------------------------------------------


def experiment_list(*, prompt: Prompt) -> QuerySet[Experiment]:
    return (
        Experiment.objects.filter(prompt=prompt)
        .select_related("winner")
        .prefetch_related(Prefetch("variants", queryset=ExperimentVariant.objects.select_related("version")))
        .order_by("-id")
    )


def experiment_get(*, prompt: Prompt, experiment_id: int | str) -> Experiment:
    try:
        return experiment_list(prompt=prompt).get(pk=int(experiment_id))
    except (Experiment.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"'{prompt.name}' has no experiment with id {experiment_id}.") from None


def experiment_results(*, experiment: Experiment) -> dict[str, Any]:
    variants = list(experiment.variants.all())
    rows = experiment.exposures.values_list("variant_id", "latency_ms", "cost_usd", "score", "is_success")
    return results.summarize(variants=variants, rows=list(rows))
