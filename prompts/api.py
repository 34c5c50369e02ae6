"""REST API for the prompt registry (paths fixed by the issue, see urls_api.py)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from core import limits
from core.api.serializers import MAX_INTEGER, ChoiceField, ClearanceField, IdField, StrictSerializer, validated
from core.classification import Clearance
from core.errors import ValidationFailed
from core.ids import parse_whole_number
from prompts import content, selectors, services
from prompts.diff import version_diff
from prompts.models import Experiment, LabelHistory, Prompt, PromptLabel, PromptVersion

TEAM_PARAMETER = OpenApiParameter(
    "team", int, description="Team id; needed only when several of your teams have a prompt with this name."
)

# Output ---------------------------------------------------------------------------


def _actor(user: Any, api_key: Any, label: str) -> dict[str, Any]:
    if user is not None:
        return {"kind": "user", "id": user.pk, "name": user.get_username()}
    if api_key is not None:
        return {"kind": "api_key", "id": api_key.pk, "name": f"cp_{api_key.prefix}"}
    return {"kind": "system", "id": None, "name": label}


class VersionSerializer(serializers.ModelSerializer):
    """A version; its messages are masked (null, `is_masked` true) when it is classified above
    the viewer's clearance, given as `clearance` in the context (missing: public, so masked)."""

    prompt = serializers.CharField(source="prompt.name", read_only=True)
    version = serializers.IntegerField(source="number")
    classification = ClearanceField(read_only=True)
    is_masked = serializers.SerializerMethodField()
    author = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField()

    class Meta:
        model = PromptVersion
        fields = [
            "id",
            "prompt",
            "version",
            "classification",
            "is_masked",
            "messages",
            "params",
            "variables",
            "context_budget",
            "commit_message",
            "author",
            "content_hash",
            "labels",
            "created_at",
        ]

    def _is_masked(self, version: PromptVersion) -> bool:
        return not version.is_visible_at(self.context.get("clearance", Clearance.PUBLIC))

    def get_is_masked(self, version: PromptVersion) -> bool:
        return self._is_masked(version)

    def to_representation(self, instance: PromptVersion) -> dict[str, Any]:
        body = dict(super().to_representation(instance))
        if self._is_masked(instance):
            body["messages"] = None
        return body

    def get_author(self, version: PromptVersion) -> dict[str, Any]:
        return _actor(version.author, version.author_api_key, version.author_label)

    def get_labels(self, version: PromptVersion) -> list[str]:
        return sorted(label.name for label in version.labels.all())


class LabelSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="name")  # type: ignore[assignment]  # the wire name shadows Field.label
    version = serializers.IntegerField(source="version.number")
    is_protected = serializers.SerializerMethodField()

    class Meta:
        model = PromptLabel
        fields = ["label", "version", "is_protected", "updated_at"]

    def get_is_protected(self, label: PromptLabel) -> bool:
        return label.prompt.is_protected(label.name)


class PromptSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    labels = serializers.SerializerMethodField()
    newest_version = serializers.SerializerMethodField()

    class Meta:
        model = Prompt
        fields = [
            "id",
            "team",
            "name",
            "description",
            "tags",
            "protected_labels",
            "labels",
            "newest_version",
            "created_at",
            "updated_at",
        ]

    def get_labels(self, prompt: Prompt) -> dict[str, int]:
        return {label.name: label.version.number for label in prompt.labels.all()}

    def get_newest_version(self, prompt: Prompt) -> Any:
        return getattr(prompt, "newest_version", None)


class PromptDetailSerializer(PromptSerializer):
    def get_newest_version(self, prompt: Prompt) -> Any:
        newest = selectors.version_list(prompt=prompt).first()
        return VersionSerializer(newest, context=self.context).data if newest is not None else None


class LabelHistorySerializer(serializers.ModelSerializer):
    from_version = serializers.IntegerField(source="from_version.number", default=None, allow_null=True)
    to_version = serializers.IntegerField(source="to_version.number")
    actor = serializers.SerializerMethodField()

    class Meta:
        model = LabelHistory
        fields = ["id", "label", "action", "from_version", "to_version", "actor", "reason", "created_at"]

    def get_actor(self, entry: LabelHistory) -> dict[str, Any]:
        return _actor(entry.actor_user, entry.actor_api_key, entry.actor_label)


class ExperimentSerializer(serializers.ModelSerializer):
    variants = serializers.SerializerMethodField()
    winner = serializers.CharField(source="winner.name", default=None, allow_null=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "name",
            "label",
            "status",
            "segment",
            "variants",
            "winner",
            "started_at",
            "stopped_at",
            "created_at",
        ]

    def get_variants(self, experiment: Experiment) -> list[dict[str, Any]]:
        return [
            {"name": variant.name, "version": variant.version.number, "weight": variant.weight}
            for variant in experiment.variants.all()
        ]


# Input ----------------------------------------------------------------------------


class PromptCreateInput(StrictSerializer):
    team = IdField(required=False)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)
    protected_labels = serializers.ListField(child=serializers.CharField(max_length=64), required=False)


class PromptUpdateInput(StrictSerializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    protected_labels = serializers.ListField(child=serializers.CharField(max_length=64), required=False)


class VersionCreateInput(StrictSerializer):
    messages = serializers.JSONField()
    params = serializers.JSONField(required=False, default=None)
    variables = serializers.JSONField(required=False, default=None)
    context_budget = serializers.JSONField(required=False, default=None)
    classification = ClearanceField(required=False, default="internal")
    commit_message = serializers.CharField(required=False, allow_blank=True, default="")


class LabelMoveInput(StrictSerializer):
    version = serializers.IntegerField(min_value=1, max_value=MAX_INTEGER)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ReasonInput(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class DocumentInput(StrictSerializer):
    id = serializers.CharField(max_length=200)
    text = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(required=False, allow_null=True, default=None)
    classification = ChoiceField(choices=Clearance.level_names(), required=False, allow_null=True, default=None)


class HistoryTurnInput(StrictSerializer):
    role = ChoiceField(choices=list(content.MESSAGE_ROLES))
    content = serializers.CharField(allow_blank=True)


class RenderInput(StrictSerializer):
    label = serializers.CharField(required=False, max_length=64)  # type: ignore[assignment]  # shadows Field.label
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INTEGER)
    variables = serializers.DictField(required=False, default=dict)
    documents = DocumentInput(many=True, required=False, default=list)
    history = HistoryTurnInput(many=True, required=False, default=list)
    subject = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    metadata = serializers.DictField(required=False, default=dict)

    _COUNT_LIMITS = (
        ("documents", "REQUEST_MAX_DOCUMENTS", "documents", "too_many_documents"),
        ("history", "REQUEST_MAX_MESSAGES", "turns", "too_many_messages"),
        ("variables", "REQUEST_MAX_VARIABLES", "variables", "too_many_variables"),
    )

    def to_internal_value(self, data: Any) -> Any:
        # Bounded before the fields are validated: a huge payload costs no per-item work.
        if isinstance(data, dict):
            for param, setting, noun, code in self._COUNT_LIMITS:
                limits.check_count(data.get(param), param=param, setting=setting, noun=noun, code=code)
            limits.check_text([((param,), data.get(param)) for param in ("variables", "documents", "history")])
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("label") and attrs.get("version"):
            raise serializers.ValidationError({"version": ["Pass either label or version, not both."]})
        return attrs


class VariantInput(StrictSerializer):
    name = serializers.CharField(max_length=32)
    version = serializers.IntegerField(min_value=1, max_value=MAX_INTEGER)
    weight = serializers.IntegerField(min_value=1, max_value=10_000, default=1)


class ExperimentCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100)
    label = serializers.CharField(max_length=64, default="production")  # type: ignore[assignment]  # shadows Field.label
    variants = VariantInput(many=True)
    segment = serializers.DictField(child=serializers.CharField(), required=False, default=dict)


class ExperimentStopInput(StrictSerializer):
    winner = serializers.CharField(required=False, max_length=32, allow_null=True, default=None)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ExposureInput(StrictSerializer):
    subject = serializers.CharField(max_length=200)
    call_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    latency_ms = serializers.FloatField(required=False, allow_null=True, min_value=0, default=None)
    cost_usd = serializers.FloatField(required=False, allow_null=True, min_value=0, default=None)
    score = serializers.FloatField(required=False, allow_null=True, default=None)
    is_success = serializers.BooleanField(required=False, allow_null=True, default=None)


# Views ----------------------------------------------------------------------------


def _prompt(request: Request, name: str) -> Prompt:
    return selectors.prompt_get(caller=get_caller(request), name=name, team_id=request.query_params.get("team"))


def _viewer(request: Request, prompt: Prompt) -> dict[str, Any]:
    """Serializer context: the viewer's clearance in the prompt's team (versions above it are masked)."""
    return {"clearance": get_caller(request).clearance_in(prompt.team_id)}


class PromptListView(generics.ListAPIView):
    serializer_class = PromptSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("team", int),
            OpenApiParameter("search", str),
            OpenApiParameter("tag", str),
            OpenApiParameter("label", str),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Prompt]:
        params = self.request.query_params
        team = params.get("team")
        team_id = parse_whole_number(team) if team is not None else None
        if team is not None and team_id is None:
            raise ValidationFailed("team must be a team id (an integer).", param="team")
        for name in ("search", "tag", "label"):
            if "\x00" in params.get(name, ""):  # PostgreSQL text cannot hold it: the query would fail (a 500)
                raise ValidationFailed(f"{name} cannot contain a NUL character.", param=name)
        return selectors.prompt_list(
            caller=get_caller(self.request),
            team_id=team_id,
            search=params.get("search", ""),
            tag=params.get("tag", ""),
            label=params.get("label", ""),
        )

    @extend_schema(request=PromptCreateInput, responses={201: PromptDetailSerializer})
    def post(self, request: Request) -> Response:
        caller = get_caller(request)
        data = validated(PromptCreateInput, request)
        team_id = data.pop("team", None)
        if team_id is None:
            if len(caller.team_ids) != 1:
                raise ValidationFailed(
                    "You belong to several teams (or none): pass team, the id of the team that owns the prompt.",
                    param="team",
                )
            team_id = caller.team_ids[0]
        team = account_selectors.team_get(caller=caller, team_id=team_id)
        prompt = services.prompt_create(caller=caller, team=team, **data)
        return Response(
            PromptDetailSerializer(prompt, context=_viewer(request, prompt)).data, status=status.HTTP_201_CREATED
        )


class PromptDetailView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], responses=PromptDetailSerializer)
    def get(self, request: Request, name: str) -> Response:
        prompt = _prompt(request, name)
        return Response(PromptDetailSerializer(prompt, context=_viewer(request, prompt)).data)

    @extend_schema(parameters=[TEAM_PARAMETER], request=PromptUpdateInput, responses=PromptDetailSerializer)
    def patch(self, request: Request, name: str) -> Response:
        prompt = _prompt(request, name)
        prompt = services.prompt_update(
            caller=get_caller(request), prompt=prompt, **validated(PromptUpdateInput, request)
        )
        return Response(PromptDetailSerializer(prompt, context=_viewer(request, prompt)).data)


class VersionListView(generics.ListAPIView):
    serializer_class = VersionSerializer

    def get_queryset(self) -> QuerySet[PromptVersion]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return PromptVersion.objects.none()
        prompt = _prompt(self.request, self.kwargs["name"])
        self.clearance = get_caller(self.request).clearance_in(prompt.team_id)
        return selectors.version_list(prompt=prompt)

    def get_serializer_context(self) -> dict[str, Any]:
        # get_queryset runs first (list) and sets the viewer's clearance in the prompt's team.
        return {**super().get_serializer_context(), "clearance": getattr(self, "clearance", Clearance.PUBLIC)}

    @extend_schema(
        parameters=[TEAM_PARAMETER],
        request=VersionCreateInput,
        responses={201: VersionSerializer, 200: VersionSerializer},
        description="Creates the next version; answers 200 with the newest version when the content is identical.",
    )
    def post(self, request: Request, name: str) -> Response:
        prompt = _prompt(request, name)
        version, created = services.prompt_version_create(
            caller=get_caller(request), prompt=prompt, **validated(VersionCreateInput, request)
        )
        version = selectors.version_get(prompt=prompt, number=version.number)
        return Response(
            VersionSerializer(version, context=_viewer(request, prompt)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class VersionDetailView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], responses=VersionSerializer)
    def get(self, request: Request, name: str, number: int) -> Response:
        prompt = _prompt(request, name)
        version = selectors.version_get(prompt=prompt, number=number)
        return Response(VersionSerializer(version, context=_viewer(request, prompt)).data)


class LabelListView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], responses=LabelSerializer(many=True))
    def get(self, request: Request, name: str) -> Response:
        return Response(LabelSerializer(selectors.label_list(prompt=_prompt(request, name)), many=True).data)


class LabelDetailView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], responses=LabelSerializer)
    def get(self, request: Request, name: str, label: str) -> Response:
        return Response(LabelSerializer(selectors.label_get(prompt=_prompt(request, name), label=label)).data)

    @extend_schema(parameters=[TEAM_PARAMETER], request=LabelMoveInput, responses=LabelSerializer)
    def put(self, request: Request, name: str, label: str) -> Response:
        prompt = _prompt(request, name)
        data = validated(LabelMoveInput, request)
        version = selectors.version_get(prompt=prompt, number=data["version"])
        moved = services.label_move(
            caller=get_caller(request), prompt=prompt, label=label, version=version, reason=data["reason"]
        )
        return Response(LabelSerializer(moved).data)


class LabelRollbackView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], request=ReasonInput, responses=LabelSerializer)
    def post(self, request: Request, name: str, label: str) -> Response:
        prompt = _prompt(request, name)
        data = validated(ReasonInput, request) if request.data else {"reason": ""}
        moved = services.label_rollback(caller=get_caller(request), prompt=prompt, label=label, reason=data["reason"])
        return Response(LabelSerializer(moved).data)


class LabelHistoryView(generics.ListAPIView):
    serializer_class = LabelHistorySerializer

    @extend_schema(parameters=[TEAM_PARAMETER])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[LabelHistory]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return LabelHistory.objects.none()
        prompt = _prompt(self.request, self.kwargs["name"])
        label = self.kwargs["label"]
        if not prompt.label_history.filter(label=label).exists():
            selectors.label_get(prompt=prompt, label=label)  # raises NotFound naming the label
        return selectors.label_history(prompt=prompt, label=label)


class ResolveView(APIView):
    @extend_schema(
        parameters=[
            TEAM_PARAMETER,
            OpenApiParameter("label", str, description="Default: production. 'latest' is the newest version."),
            OpenApiParameter("version", int),
            OpenApiParameter("subject", str, description="End-user or session id for experiment assignment."),
        ],
        responses={200: dict},
    )
    def get(self, request: Request, name: str) -> Response:
        params = request.query_params
        metadata = {key[len("metadata.") :]: value for key, value in params.items() if key.startswith("metadata.")}
        resolved = selectors.prompt_resolve(
            caller=get_caller(request),
            name=name,
            label=params.get("label") or None,
            version=params.get("version"),
            team_id=params.get("team"),
            subject=params.get("subject") or None,
            metadata=metadata,
        )
        return Response(resolved.as_dict())


class RenderView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], request=RenderInput, responses={200: dict})
    def post(self, request: Request, name: str) -> Response:
        caller = get_caller(request)
        data = validated(RenderInput, request)
        resolved = selectors.prompt_resolve(
            caller=caller,
            name=name,
            label=data.get("label"),
            version=data.get("version"),
            team_id=request.query_params.get("team"),
            subject=data["subject"] or None,
            metadata=data["metadata"],
        )
        body = selectors.prompt_render(
            caller=caller,
            resolved=resolved,
            variables=data["variables"],
            documents=data["documents"],
            history=data["history"],
        )
        return Response(body)


class DiffView(APIView):
    @extend_schema(
        parameters=[
            TEAM_PARAMETER,
            OpenApiParameter("from", int, required=True),
            OpenApiParameter("to", int, required=True),
        ],
        responses={200: dict},
    )
    def get(self, request: Request, name: str) -> Response:
        prompt = _prompt(request, name)
        numbers = {}
        for key in ("from", "to"):
            value = request.query_params.get(key, "")
            if parse_whole_number(value) is None:
                raise ValidationFailed(f"Pass ?{key}=<version number>.", param=key)
            numbers[key] = value
        caller = get_caller(request)
        old = selectors.version_get(prompt=prompt, number=numbers["from"])
        new = selectors.version_get(prompt=prompt, number=numbers["to"])
        for side in (old, new):
            selectors.version_require_visible(caller=caller, prompt=prompt, version=side)
        return Response({"prompt": prompt.name, **version_diff(old, new)})


# Experiments ------------------------------------------------------------------------


class ExperimentListView(generics.ListAPIView):
    serializer_class = ExperimentSerializer

    def get_queryset(self) -> QuerySet[Experiment]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return Experiment.objects.none()
        return selectors.experiment_list(prompt=_prompt(self.request, self.kwargs["name"]))

    @extend_schema(parameters=[TEAM_PARAMETER], request=ExperimentCreateInput, responses={201: ExperimentSerializer})
    def post(self, request: Request, name: str) -> Response:
        caller = get_caller(request)
        prompt = _prompt(request, name)
        data = validated(ExperimentCreateInput, request)
        variants = [
            services.VariantSpec(
                name=variant["name"],
                version=selectors.version_get(prompt=prompt, number=variant["version"]),
                weight=variant["weight"],
            )
            for variant in data.pop("variants")
        ]
        experiment = services.experiment_create(caller=caller, prompt=prompt, variants=variants, **data)
        experiment = selectors.experiment_get(prompt=prompt, experiment_id=experiment.id)
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)


def _experiment(request: Request, name: str, experiment_id: int) -> Experiment:
    return selectors.experiment_get(prompt=_prompt(request, name), experiment_id=experiment_id)


class ExperimentDetailView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], responses=ExperimentSerializer)
    def get(self, request: Request, name: str, experiment_id: int) -> Response:
        return Response(ExperimentSerializer(_experiment(request, name, experiment_id)).data)


class ExperimentStartView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], request=None, responses=ExperimentSerializer)
    def post(self, request: Request, name: str, experiment_id: int) -> Response:
        experiment = services.experiment_start(
            caller=get_caller(request), experiment=_experiment(request, name, experiment_id)
        )
        return Response(ExperimentSerializer(experiment).data)


class ExperimentStopView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], request=ExperimentStopInput, responses=ExperimentSerializer)
    def post(self, request: Request, name: str, experiment_id: int) -> Response:
        experiment = _experiment(request, name, experiment_id)
        data = validated(ExperimentStopInput, request) if request.data else {"winner": None, "reason": ""}
        experiment = services.experiment_stop(caller=get_caller(request), experiment=experiment, **data)
        return Response(ExperimentSerializer(experiment).data)


class ExperimentResultsView(APIView):
    @extend_schema(parameters=[TEAM_PARAMETER], responses={200: dict})
    def get(self, request: Request, name: str, experiment_id: int) -> Response:
        experiment = _experiment(request, name, experiment_id)
        body = {
            "experiment": ExperimentSerializer(experiment).data,
            **selectors.experiment_results(experiment=experiment),
        }
        return Response(body)


class ExperimentExposureView(APIView):
    @extend_schema(
        parameters=[TEAM_PARAMETER],
        request=ExposureInput,
        responses={201: dict},
        description="Record that a subject was served its sticky variant for one call (the gateway does this itself).",
    )
    def post(self, request: Request, name: str, experiment_id: int) -> Response:
        experiment = _experiment(request, name, experiment_id)
        exposure = services.experiment_exposure_record(
            caller=get_caller(request), experiment=experiment, **validated(ExposureInput, request)
        )
        body = {
            "id": exposure.id,
            "experiment": experiment.id,
            "variant": exposure.variant.name,
            "version": exposure.variant.version.number,
            "subject": exposure.subject,
            "call_id": exposure.call_id,
        }
        return Response(body, status=status.HTTP_201_CREATED)
