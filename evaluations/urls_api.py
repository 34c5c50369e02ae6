from django.urls import include, path

from evaluations import api, api_runs

_DATASET = "datasets/<str:dataset_id>"

urlpatterns = [
    path("", include("evaluations.urls_gates_api")),  # first: eval-runs/compare/ is not a run id
    path("datasets/", api.DatasetListView.as_view(), name="api-datasets"),
    path(f"{_DATASET}/", api.DatasetDetailView.as_view(), name="api-dataset"),
    path(f"{_DATASET}/archive/", api.DatasetArchiveView.as_view(), name="api-dataset-archive"),
    path(f"{_DATASET}/versions/", api.VersionListView.as_view(), name="api-dataset-versions"),
    path(f"{_DATASET}/items/", api.ItemListView.as_view(), name="api-dataset-items"),
    path(f"{_DATASET}/items/batch/", api.ItemBatchView.as_view(), name="api-dataset-items-batch"),
    path(f"{_DATASET}/items/<str:key>/", api.ItemDetailView.as_view(), name="api-dataset-item"),
    path(f"{_DATASET}/import/", api.ImportView.as_view(), name="api-dataset-import"),
    path(f"{_DATASET}/export/", api.ExportView.as_view(), name="api-dataset-export"),
    path(f"{_DATASET}/from-calls/", api.FromCallsView.as_view(), name="api-dataset-from-calls"),
    path("scorers/", api.ScorerListView.as_view(), name="api-scorers"),
    path("scorers/test/", api.ScorerTestView.as_view(), name="api-scorer-test"),
    path("scorers/<str:scorer_id>/", api.ScorerDetailView.as_view(), name="api-scorer"),
    path("scorers/<str:scorer_id>/score/", api.ScorerScoreView.as_view(), name="api-scorer-score"),
    path("brand-policies/", api.BrandPolicyListView.as_view(), name="api-brand-policies"),
    path("brand-policies/<str:policy_id>/", api.BrandPolicyDetailView.as_view(), name="api-brand-policy"),
    path("eval-runs/", api_runs.RunListView.as_view(), name="api-eval-runs"),
    path("eval-runs/<str:run_id>/", api_runs.RunDetailView.as_view(), name="api-eval-run"),
    path("eval-runs/<str:run_id>/cancel/", api_runs.RunCancelView.as_view(), name="api-eval-run-cancel"),
    path("eval-runs/<str:run_id>/retry-failed/", api_runs.RunRetryFailedView.as_view(), name="api-eval-run-retry"),
    path("eval-runs/<str:run_id>/results/", api_runs.RunResultListView.as_view(), name="api-eval-run-results"),
]
