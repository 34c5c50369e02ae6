"""Test settings: the real settings, plus what a test run on plain HTTP needs.

The database and broker still come from DATABASE_URL and CELERY_BROKER_URL, so the
same suite runs on SQLite with the filesystem broker or on PostgreSQL with Redis.
"""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-that-is-long-enough-for-checks-0123456789abcdef")
os.environ.setdefault("CONTROLPLANE_VAR_DIR", tempfile.mkdtemp(prefix="controlplane-test-"))

from controlplane.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast hashing in tests only
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = str(VAR_DIR / "staticfiles")  # noqa: F405
os.makedirs(STATIC_ROOT, exist_ok=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: threads (live servers, workers, writers) then wait for
    # each other's locks (busy timeout) instead of failing with "database table is locked".
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405 - threads of live servers must not hold the test database open
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"caller": "100000/minute"}  # noqa: F405
# The schema tests and fuzzing read it anonymously; controlplane/tests/test_access_edges.py turns it on.
API_SCHEMA_REQUIRES_LOGIN = False
# The suite fakes providers and webhook receivers on 127.0.0.1; the egress tests empty it.
EGRESS_ALLOWLIST = os.environ.get("EGRESS_ALLOWLIST", "127.0.0.1")
