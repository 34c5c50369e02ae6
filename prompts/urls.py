from django.urls import path

from prompts import views

app_name = "prompts"

urlpatterns = [
    path("", views.prompt_list, name="list"),
    path("new/", views.prompt_create, name="create"),
    path("<int:prompt_id>/", views.prompt_detail, name="detail"),
    path("<int:prompt_id>/versions/new/", views.version_create, name="version-create"),
    path("<int:prompt_id>/labels/deploy/", views.label_deploy, name="label-deploy"),
    path("<int:prompt_id>/labels/<str:label>/rollback/", views.label_rollback, name="label-rollback"),
    path("<int:prompt_id>/diff/", views.diff_page, name="diff"),
    path("<int:prompt_id>/playground/", views.playground, name="playground"),
    path("<int:prompt_id>/experiments/<int:experiment_id>/", views.experiment_page, name="experiment"),
]
