"""Settings, read once from the environment (django-environ).

Defaults are production-safe: DEBUG is off, cookies are secure and HTTPS is enforced
unless the environment says otherwise. `make run` sets the few variables a local,
plain-HTTP run needs. Every variable is listed in the README's configuration table.
"""

from pathlib import Path

import environ
from csp import constants as _csp_constants

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("CONTROLPLANE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
_INSECURE_DEV_KEY = "insecure-development-key-only-used-when-DJANGO_DEBUG-is-true-0123456789"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_INSECURE_DEV_KEY if DEBUG else "")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("Set DJANGO_SECRET_KEY (a long random string) or DJANGO_DEBUG=true.")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_htmx",
    "core",
    "controlplane",
    "accounts",
    "prompts",
    "gateway",
    "gateway.semantic_cache",
    "observability",
    "compliance",
    "compliance.guardrails",
    "costs",
    "evaluations",
    "feedback",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.middleware.ApplicationErrorMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'controlplane.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the worker read while the other writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The shared cache holds the generation tokens every process reads to drop stale per-process
# caches (core.generation_cache), so it must be shared by the web server, the worker and
# `manage.py` commands. The default, `sqlitecache://`, is one SQLite file under VAR_DIR
# (`sqlitecache:///absolute/path.sqlite3` names another file); production sets `redis://...`.
# `locmemcache://` is per process: a change made by another process is not seen until a restart.
_CACHE_URL = env.str("CACHE_URL", default="sqlitecache://")
if _CACHE_URL.startswith("sqlitecache://"):
    CACHES = {
        "default": {
            "BACKEND": "core.cache.SQLiteCache",
            "LOCATION": _CACHE_URL.removeprefix("sqlitecache://") or str(VAR_DIR / "cache.sqlite3"),
        }
    }
else:
    CACHES = {"default": env.cache_url_config(_CACHE_URL)}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "core.cache.RedisCache"  # one redis-py client per pool
    # Fail fast when Redis is down or stalls: the gateway then serves from the database
    # (core.generation_cache); a stalled cache must not hold every request for seconds.
    CACHES["default"]["OPTIONS"] = {
        "socket_connect_timeout": env.float("SHARED_CACHE_CONNECT_TIMEOUT_SECONDS", default=0.25),
        "socket_timeout": env.float("SHARED_CACHE_TIMEOUT_SECONDS", default=0.5),
        **CACHES["default"].get("OPTIONS", {}),  # type: ignore[dict-item] # options given in CACHE_URL win
    }

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous object permissions

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "DJANGO_STATICFILES_STORAGE",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage",
        )
    },
}
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=DEBUG)

# Security: on by default, relaxed only by explicit environment variables for local HTTP.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts and styles from our own origin (static files),
# or inline only with the request's nonce; no inline event handlers, no eval, no framing.
# CSP_REPORT_URI, when set, is where browsers report violations.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", _csp_constants.NONCE],
        "style-src": ["'self'", _csp_constants.NONCE],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        **({"report-uri": env.str("CSP_REPORT_URI")} if env.str("CSP_REPORT_URI", default="") else {}),
    }
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_MAX_BODY_BYTES", default=10 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsAuthenticatedCaller"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.CallerRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"caller": env.str("API_THROTTLE_RATE", default="600/minute")},
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LLMOps control plane API",
    "DESCRIPTION": "Teams, applications, API keys, prompts, gateway, costs and compliance.",
    "VERSION": "1.0.0",
    # Adds the gateway's /v1 endpoints (no DRF view serves them), for /api/schema/ and for
    # `manage.py spectacular` alike.
    "DEFAULT_GENERATOR_CLASS": "controlplane.schema.SchemaGenerator",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's assets come from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "MemberRoleEnum": "accounts.models.MEMBER_ROLES",
        "KeyRoleEnum": "accounts.types.Role",
        "ClearanceEnum": ["public", "internal", "confidential", "restricted"],
        "BudgetActionEnum": "costs.types.BudgetAction",
        "GuardrailPiiActionEnum": "compliance.guardrails.types.PiiAction.choices",
        "GuardrailInjectionActionEnum": "compliance.guardrails.types.InjectionAction.choices",
        "GuardrailLeakActionEnum": "compliance.guardrails.types.LeakAction.choices",
        "ClassificationDetectorKindEnum": "compliance.guardrails.types.DetectorKind.choices",
        "ScorerKindEnum": "evaluations.types.ScorerKind.choices",
    },
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # API_SCHEMA_REQUIRES_LOGIN (below) decides, per request, whether these need a caller.
    "SERVE_PERMISSIONS": ["controlplane.schema.SchemaAccess"],
}
# /api/schema/ and /api/docs/ for signed-in users and API keys only: on by default in production
# (the schema maps every endpoint), off with DJANGO_DEBUG for developers.
API_SCHEMA_REQUIRES_LOGIN = env.bool("API_SCHEMA_REQUIRES_LOGIN", default=not DEBUG)
# When set, /metrics answers only requests with `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Celery. The default broker is kombu's filesystem transport: a real worker and beat
# with no broker server. Production sets CELERY_BROKER_URL=redis://...
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": 3600}
)
if CELERY_BROKER_URL.startswith("filesystem"):
    for _folder in ("queue", "control"):
        (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.logging.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "uvicorn.access": {"level": "WARNING"},
    },
}

# Password logins (accounts.login_throttle): this many failures within the window lock the
# account, or the client's address (shared by everyone behind one NAT: a higher limit), out of
# password logins for LOGIN_LOCKOUT_SECONDS. Sessions and API keys are not affected.
LOGIN_FAILURES_PER_ACCOUNT = env.int("LOGIN_FAILURES_PER_ACCOUNT", default=5)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=20)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

# Accounts: how often an API key's last-used time is written (seconds); a hot key is not
# written on every request.
API_KEY_LAST_USED_RESOLUTION_SECONDS = env.int("API_KEY_LAST_USED_RESOLUTION_SECONDS", default=60)

# Key for secrets encrypted at rest (core.crypto); defaults to one derived from SECRET_KEY.
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")

# Gateway (the OpenAI-compatible endpoint). Timeouts and retries per provider live on the
# provider; these bound every call.
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# Requests made on a tenant's behalf (providers, budget webhooks) never reach loopback,
# link-local, private, multicast or reserved addresses, except those listed here:
# comma-separated IP addresses or CIDR ranges (core/egress.py). `make run` sets
# 127.0.0.1 for the local default model.
EGRESS_ALLOWLIST = env.str("EGRESS_ALLOWLIST", default="")
try:
    from core.egress import parse_allowlist as _parse_egress_allowlist

    _parse_egress_allowlist(EGRESS_ALLOWLIST)
except ValueError as _egress_error:
    raise environ.ImproperlyConfigured(str(_egress_error)) from None
GATEWAY_TOTAL_TIMEOUT_SECONDS = env.float("GATEWAY_TOTAL_TIMEOUT_SECONDS", default=120.0)
# Evaluations: workers call targets through the gateway in their own process (this ASGI
# application), or over HTTP at EVAL_GATEWAY_URL when the workers run apart from the web
# processes. A worker's claim on a run's items lapses after EVAL_LEASE_SECONDS, so a killed
# worker's items are taken up again.
EVAL_GATEWAY_URL = env.str("EVAL_GATEWAY_URL", default="")
EVAL_GATEWAY_ASGI_APPLICATION = "controlplane.asgi.application"
EVAL_LEASE_SECONDS = env.float("EVAL_LEASE_SECONDS", default=300.0)
GATEWAY_THREADS = env.int("GATEWAY_THREADS", default=8)
GATEWAY_MAX_CONNECTIONS = env.int("GATEWAY_MAX_CONNECTIONS", default=200)
# Every dimension of one request to /v1/chat/completions or the prompt render API is bounded
# (core.limits): a request over one is refused with a 400 naming the setting, before any
# work is done for it or any budget reserved.
REQUEST_MAX_MESSAGES = env.int("REQUEST_MAX_MESSAGES", default=1_000)
REQUEST_MAX_DOCUMENTS = env.int("REQUEST_MAX_DOCUMENTS", default=100)
REQUEST_MAX_TOOLS = env.int("REQUEST_MAX_TOOLS", default=128)
REQUEST_MAX_VARIABLES = env.int("REQUEST_MAX_VARIABLES", default=100)
REQUEST_MAX_TEXT_CHARS = env.int("REQUEST_MAX_TEXT_CHARS", default=500_000)
REQUEST_MAX_TOTAL_CHARS = env.int("REQUEST_MAX_TOTAL_CHARS", default=1_000_000)
# One prompt render (prompts.templating): its output and every value it builds, its steps
# (calls and loop iterations) and its time. The output may hold a request's documents.
PROMPT_RENDER_MAX_CHARS = env.int("PROMPT_RENDER_MAX_CHARS", default=1_000_000)
PROMPT_RENDER_MAX_STEPS = env.int("PROMPT_RENDER_MAX_STEPS", default=100_000)
PROMPT_RENDER_MAX_SECONDS = env.float("PROMPT_RENDER_MAX_SECONDS", default=2.0)
# A gateway thread's (or the call recorder's) database connection used successfully within
# this many seconds is not pinged again before its next step (Django's CONN_HEALTH_CHECKS
# would ping on every step).
GATEWAY_DB_CHECK_IDLE_SECONDS = env.float("GATEWAY_DB_CHECK_IDLE_SECONDS", default=1.0)
# How long a gateway process trusts an authenticated key without a database lookup; revocation
# does not wait for it (a generation token), it bounds how stale the key's last-used time gets.
GATEWAY_KEY_CACHE_SECONDS = env.float("GATEWAY_KEY_CACHE_SECONDS", default=60.0)
# While the shared cache is unavailable it is tried again at most every SHARED_CACHE_RETRY_SECONDS,
# and per-process caches keep a value at most SHARED_CACHE_FALLBACK_TTL_SECONDS before reloading
# it from the database (core.generation_cache).
SHARED_CACHE_RETRY_SECONDS = env.float("SHARED_CACHE_RETRY_SECONDS", default=1.0)
SHARED_CACHE_FALLBACK_TTL_SECONDS = env.float("SHARED_CACHE_FALLBACK_TTL_SECONDS", default=1.0)
GATEWAY_BACKOFF_BASE_SECONDS = env.float("GATEWAY_BACKOFF_BASE_SECONDS", default=0.25)
GATEWAY_BACKOFF_CAP_SECONDS = env.float("GATEWAY_BACKOFF_CAP_SECONDS", default=8.0)
GATEWAY_RETRY_AFTER_CAP_SECONDS = env.float("GATEWAY_RETRY_AFTER_CAP_SECONDS", default=20.0)
GATEWAY_BREAKER_THRESHOLD = env.int("GATEWAY_BREAKER_THRESHOLD", default=5)
GATEWAY_BREAKER_WINDOW_SECONDS = env.float("GATEWAY_BREAKER_WINDOW_SECONDS", default=30.0)
GATEWAY_BREAKER_COOLDOWN_SECONDS = env.float("GATEWAY_BREAKER_COOLDOWN_SECONDS", default=30.0)
GATEWAY_SPOOL_DIR = env.str("GATEWAY_SPOOL_DIR", default=str(VAR_DIR / "spool" / "calls"))
GATEWAY_SPOOL_FSYNC = env.bool("GATEWAY_SPOOL_FSYNC", default=False)
GATEWAY_RECORDER_BATCH_SIZE = env.int("GATEWAY_RECORDER_BATCH_SIZE", default=500)
# The recorder stores what accumulated every interval (sooner when a batch is full). A batch
# has a fixed cost of a few milliseconds of CPU (batches of one are the most costly per call),
# and holds the GIL while it is prepared (long batches make the latency tail: 0.05 s gave the
# best p99 at 0.05, 0.1 and 0.2 s, at the same CPU per call; bench/README.md).
GATEWAY_RECORDER_INTERVAL_SECONDS = env.float("GATEWAY_RECORDER_INTERVAL_SECONDS", default=0.05)
# A call without max_tokens is held to this many output tokens when a budget applies, so
# that the reserved worst case really is the worst case.
GATEWAY_BUDGET_DEFAULT_MAX_TOKENS = env.int("GATEWAY_BUDGET_DEFAULT_MAX_TOKENS", default=4096)

# Compliance: the key that signs audit checkpoints and export manifests (HMAC-SHA256). Set
# AUDIT_SIGNING_KEY to a long random string kept apart from the database, so that someone
# who can write the database cannot forge checkpoints. If unset it is derived from
# SECRET_KEY (sha256 of "audit-signing:" + SECRET_KEY), so rotating SECRET_KEY then changes it.
from hashlib import sha256 as _sha256  # noqa: E402 - kept with the setting it derives

AUDIT_SIGNING_KEY = (
    env.str("AUDIT_SIGNING_KEY", default="") or _sha256(f"audit-signing:{SECRET_KEY}".encode()).hexdigest()
)
# The audit chain is keyed with it too (chain format 3): keep it out of the database and stable,
# since events sealed under one key verify only with that key.
# After every seal the chain's head (count and hash, signed) is appended to AUDIT_HEAD_FILE,
# outside the database, so that verification detects a truncated or emptied audit table; put
# it on storage the database's users cannot write (or ship it elsewhere). "" turns it off.
AUDIT_HEAD_FILE = env.str("AUDIT_HEAD_FILE", default=str(VAR_DIR / "audit-heads.jsonl"))
# The sealer refuses (and verification reports) an event dated more than this before the
# events already sealed: an INSERT backdated into the past.
AUDIT_SEAL_MAX_BACKDATE_SECONDS = env.int("AUDIT_SEAL_MAX_BACKDATE_SECONDS", default=300)
# Audit events recorded by services that do not receive the request still get the client's address.
MIDDLEWARE.append("compliance.middleware.AuditContextMiddleware")

# Semantic cache (gateway.semantic_cache). Fills are written by a background thread; "inline"
# writes them in the calling thread (tests, scripts). How often a process looks for entries
# other processes wrote, and how many candidates a lookup verifies against the database.
SEMANTIC_CACHE_WRITER = env.str("SEMANTIC_CACHE_WRITER", default="thread")
SEMANTIC_CACHE_SYNC_SECONDS = env.float("SEMANTIC_CACHE_SYNC_SECONDS", default=1.0)
SEMANTIC_CACHE_WRITE_QUEUE_SIZE = env.int("SEMANTIC_CACHE_WRITE_QUEUE_SIZE", default=10_000)
