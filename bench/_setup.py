"""The environment a benchmark sets up before `django.setup()`: a temporary CONTROLPLANE_VAR_DIR
removed at exit, the settings the in-process benchmarks share, and on PostgreSQL a throwaway
database next to DATABASE_URL's, dropped at exit.

    from bench._setup import in_process_environment, throwaway_database
    in_process_environment("costs-bench-")
    throwaway_database(f"costs_bench_{os.getpid()}")
    import django
    django.setup()
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import psycopg


def temporary_var_dir(prefix: str) -> str:
    """A fresh CONTROLPLANE_VAR_DIR (removed at exit); returns its path."""
    var_dir = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, var_dir, ignore_errors=True)
    os.environ["CONTROLPLANE_VAR_DIR"] = var_dir
    return var_dir


def in_process_environment(var_dir_prefix: str, *, is_local: bool = False) -> str:
    """For a benchmark that runs Django in its own process: a temporary var dir, the settings
    module, DEBUG on and warnings only in the log; `is_local`: no database or cache server
    either (the settings' defaults, SQLite files in the var dir). Returns the var dir."""
    var_dir = temporary_var_dir(var_dir_prefix)
    os.environ["DJANGO_DEBUG"] = "true"
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    if is_local:
        for variable in ("DATABASE_URL", "CACHE_URL"):
            os.environ.pop(variable, None)
    return var_dir


def throwaway_database(name: str) -> None:
    """When DATABASE_URL names a PostgreSQL server: create the database `name` on it, point
    DATABASE_URL at it, and drop it at exit. Otherwise nothing (the settings' SQLite)."""
    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url.startswith("postgres"):
        return
    base, _, _ = server_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        # Imported when the benchmark exits: this module is imported before the benchmark has
        # set Django's environment.
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    os.environ["DATABASE_URL"] = f"{base}/{name}"
