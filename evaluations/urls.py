from django.urls import path

from evaluations import views, views_compare, views_gates, views_runs

app_name = "evaluations"

urlpatterns = [
    path("", views.dataset_list, name="datasets"),
    path("datasets/new/", views.dataset_create, name="dataset-create"),
    path("datasets/from-calls/", views.dataset_from_calls, name="dataset-from-calls"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:dataset_id>/upload/", views.dataset_upload, name="dataset-upload"),
    path("datasets/<int:dataset_id>/export/", views.dataset_export, name="dataset-export"),
    path("scorers/", views.scorer_list, name="scorers"),
    path("scorers/new/", views.scorer_create, name="scorer-create"),
    path("scorers/try/", views.scorer_try, name="scorer-try"),
    path("runs/", views_runs.run_list, name="runs"),
    path("runs/new/", views_runs.run_create, name="run-create"),
    path("runs/<int:run_id>/", views_runs.run_detail, name="run"),
    path("runs/<int:run_id>/live/", views_runs.run_live, name="run-live"),
    path("runs/<int:run_id>/cancel/", views_runs.run_cancel, name="run-cancel"),
    path("runs/<int:run_id>/retry-failed/", views_runs.run_retry_failed, name="run-retry"),
    path("compare/", views_compare.compare_page, name="compare"),
    path("gates/", views_gates.gate_list, name="gates"),
    path("gates/new/", views_gates.gate_create, name="gate-create"),
    path("gates/<int:gate_id>/switch-off/", views_gates.gate_deactivate, name="gate-deactivate"),
]
