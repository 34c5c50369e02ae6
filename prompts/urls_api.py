from django.urls import path

from prompts import api

_NAME = "prompts/<str:name>"

urlpatterns = [
    path("prompts/", api.PromptListView.as_view(), name="api-prompts"),
    path(f"{_NAME}/", api.PromptDetailView.as_view(), name="api-prompt"),
    path(f"{_NAME}/versions/", api.VersionListView.as_view(), name="api-prompt-versions"),
    path(f"{_NAME}/versions/<int:number>/", api.VersionDetailView.as_view(), name="api-prompt-version"),
    path(f"{_NAME}/labels/", api.LabelListView.as_view(), name="api-prompt-labels"),
    path(f"{_NAME}/labels/<str:label>/", api.LabelDetailView.as_view(), name="api-prompt-label"),
    path(f"{_NAME}/labels/<str:label>/rollback/", api.LabelRollbackView.as_view(), name="api-prompt-label-rollback"),
    path(f"{_NAME}/labels/<str:label>/history/", api.LabelHistoryView.as_view(), name="api-prompt-label-history"),
    path(f"{_NAME}/resolve/", api.ResolveView.as_view(), name="api-prompt-resolve"),
    path(f"{_NAME}/render/", api.RenderView.as_view(), name="api-prompt-render"),
    path(f"{_NAME}/diff/", api.DiffView.as_view(), name="api-prompt-diff"),
    path(f"{_NAME}/experiments/", api.ExperimentListView.as_view(), name="api-prompt-experiments"),
    path(
        f"{_NAME}/experiments/<int:experiment_id>/",
        api.ExperimentDetailView.as_view(),
        name="api-prompt-experiment",
    ),
    path(
        f"{_NAME}/experiments/<int:experiment_id>/start/",
        api.ExperimentStartView.as_view(),
        name="api-prompt-experiment-start",
    ),
    path(
        f"{_NAME}/experiments/<int:experiment_id>/stop/",
        api.ExperimentStopView.as_view(),
        name="api-prompt-experiment-stop",
    ),
    path(
        f"{_NAME}/experiments/<int:experiment_id>/results/",
        api.ExperimentResultsView.as_view(),
        name="api-prompt-experiment-results",
    ),
    path(
        f"{_NAME}/experiments/<int:experiment_id>/exposures/",
        api.ExperimentExposureView.as_view(),
        name="api-prompt-experiment-exposures",
    ),
]
