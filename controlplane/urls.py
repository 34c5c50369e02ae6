from typing import Any

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from accounts import views as accounts_views
from accounts.login_throttle import ThrottledAdminAuthenticationForm
from controlplane import views
from controlplane.schema import SchemaGenerator
from core import views as core_views


class FaviconRedirect(RedirectView):
    def get_redirect_url(self, *args: Any, **kwargs: Any) -> str:
        return static("favicon.ico")  # at request time: the manifest of hashed names may not exist at import


admin.site.login_form = ThrottledAdminAuthenticationForm  # the admin's login is throttled like the login page

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics, name="metrics"),
    # Browsers ask for /favicon.ico on every page that names no icon (a PDF, an error page
    # outside the layout): send them to the static file, whose hashed name may change (302).
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
    path("login/", accounts_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # An invitation link: opened without logging in (the invitee has no account yet).
    path("invite/<str:token>/", accounts_views.invitation_accept, name="invitation"),
    # The generator adds the gateway's /v1 endpoints, which no DRF view serves.
    path("api/schema/", SpectacularAPIView.as_view(generator_class=SchemaGenerator), name="api-schema"),
    path("api/docs/", core_views.api_docs, name="api-docs"),
    path("api/v1/", include("accounts.urls_api")),
    path("api/v1/", include("prompts.urls_api")),
    path("api/v1/", include("costs.urls_api")),
    path("api/v1/", include("compliance.urls_api")),
    path("api/v1/", include("compliance.guardrails.urls_api")),
    path("api/v1/", include("gateway.urls_config_api")),
    path("api/v1/", include("observability.urls_api")),
    path("api/v1/", include("gateway.semantic_cache.urls_api")),
    path("api/v1/", include("evaluations.urls_api")),
    path("settings/", include("accounts.urls")),
    path("prompts/", include("prompts.urls")),
    path("compliance/guardrails/", include("compliance.guardrails.urls")),
    path("compliance/", include("compliance.urls")),
    path("costs/", include("costs.urls")),
    path("gateway/cache/", include("gateway.semantic_cache.urls")),
    path("gateway/", include("gateway.urls")),
    path("calls/", include("observability.urls")),
    path("evaluations/", include("evaluations.urls")),
    path("<slug:area>/", views.area_placeholder, name="area"),
]

handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
