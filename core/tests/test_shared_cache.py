"""The shared cache across processes: a change made by another process (a `manage.py`
command, the worker) reaches this process's next lookup, on the embedded default (one
SQLite file under the var folder) and on Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection

from accounts.caller import caller_for_user
from core.generation_cache import request_step
from gateway.tests.processes import manage
from prompts import selectors

ROOT = Path(__file__).resolve().parents[2]

SUPPORT_YAML = textwrap.dedent(
    """\
    name: support
    messages:
      - role: system
        content: You are a support agent. {suffix}
      - role: user
        content: "{{{{ question }}}}"
    """
)


def _database_url() -> str:
    """The URL of the test database this process uses, for a second process."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    assert connection.vendor == "postgresql"
    user, host, port = settings["USER"] or "postgres", settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{user}@{host}:{port}/{settings['NAME']}"


@pytest.fixture(params=["embedded default", "redis"])
def second_process_env(request: pytest.FixtureRequest, tmp_path: Path, settings: object) -> Iterator[dict[str, str]]:
    """The environment of a second process sharing this process's database and shared cache."""
    env = {key: value for key, value in os.environ.items() if key != "CACHE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="controlplane.settings_test", DATABASE_URL=_database_url())
    if request.param == "embedded default":
        # No CACHE_URL: the second process takes the default, the SQLite file in its var folder.
        env["CONTROLPLANE_VAR_DIR"] = str(tmp_path)
        settings.CACHES = {  # type: ignore[attr-defined]
            "default": {"BACKEND": "core.cache.SQLiteCache", "LOCATION": str(tmp_path / "cache.sqlite3")}
        }
    else:
        url = os.environ.get("CACHE_URL", "")
        if not url.startswith("redis://"):
            pytest.skip("CACHE_URL is not a Redis URL (run with CACHE_URL=redis://... to test Redis)")
        env["CACHE_URL"] = url
    cache.clear()
    yield env
    cache.clear()


def test_the_default_shared_cache_is_one_sqlite_file_in_the_var_folder(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "CACHE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="controlplane.settings_test", CONTROLPLANE_VAR_DIR=str(tmp_path))
    script = "from django.conf import settings; print(settings.CACHES['default'])"

    result = manage("shell", "--no-imports", "-c", script, env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == str(
        {"BACKEND": "core.cache.SQLiteCache", "LOCATION": str(tmp_path / "cache.sqlite3")}
    )


@pytest.mark.django_db(transaction=True)
def test_a_label_moved_by_prompts_sync_in_another_process_resolves_at_once(
    team_a, second_process_env, tmp_path_factory
):
    # given a prompt whose production label this (server) process has resolved and cached
    folder = tmp_path_factory.mktemp("prompts")
    (folder / "support.yaml").write_text(SUPPORT_YAML.format(suffix="Be brief."))
    call_command("prompts_sync", str(folder), "--team", str(team_a.team.id), "--label", "production", stdout=StringIO())
    caller = caller_for_user(team_a.members["viewer"])
    with request_step():
        assert selectors.prompt_resolve(caller=caller, name="support").version.version == 1
    with request_step():
        assert selectors.prompt_resolve(caller=caller, name="support").version.version == 1  # a cache hit

    # when another process syncs a changed file and moves the label
    (folder / "support.yaml").write_text(SUPPORT_YAML.format(suffix="Be very brief."))
    result = manage(
        "prompts_sync",
        str(folder),
        "--team",
        str(team_a.team.id),
        "--label",
        "production",
        env=second_process_env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "support: move label production to version 2" in result.stdout

    # then this process's next request step serves the new version, with no restart
    with request_step():
        assert selectors.prompt_resolve(caller=caller, name="support").version.version == 2


# Run by two processes at once: a start file releases both, so their writes interleave.
CONTENDER = textwrap.dedent(
    """\
    import os, sys, time
    from core.cache import SQLiteCache

    location, start = sys.argv[1], sys.argv[2]
    shared = SQLiteCache(location, {})
    while not os.path.exists(start):
        time.sleep(0.01)
    for _ in range(200):
        shared.incr("counter")
    print(sum(bool(shared.add(f"probe:{number}", os.getpid(), timeout=60)) for number in range(100)))
    """
)


def test_sqlite_cache_incr_and_add_are_atomic_across_processes(tmp_path):
    from core.cache import SQLiteCache

    location, start = str(tmp_path / "cache.sqlite3"), tmp_path / "start"
    shared = SQLiteCache(location, {})
    shared.set("counter", 0, timeout=None)
    contenders = [
        subprocess.Popen(  # noqa: S603 - our own script with fixed arguments
            [sys.executable, "-c", CONTENDER, location, str(start)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    start.touch()

    wins = sum(int(contender.communicate(timeout=120)[0]) for contender in contenders)

    assert [contender.returncode for contender in contenders] == [0, 0]
    assert shared.get("counter") == 400  # no lost update
    assert wins == 100  # each key added by exactly one process
    shared.clear()
    assert shared.get("counter") is None
    assert shared.get_many([f"probe:{number}" for number in range(100)]) == {}


def test_sqlite_cache_follows_django_cache_semantics(tmp_path):
    from core.cache import SQLiteCache

    shared = SQLiteCache(str(tmp_path / "cache.sqlite3"), {})

    shared.set("token", "abc", timeout=None)
    shared.set("flag", True)
    shared.set("structure", {"models": ["gpt-4o"]})
    shared.set("gone", "x", timeout=0)

    assert shared.add("token", "other") is False
    assert shared.add("gone", "back") is True  # an expired entry counts as absent
    assert shared.get_many(["token", "flag", "structure", "gone", "missing"]) == {
        "token": "abc",
        "flag": True,
        "structure": {"models": ["gpt-4o"]},
        "gone": "back",
    }
    shared.set("price", 1.5)
    assert shared.incr("price", 2) == 3.5
    with pytest.raises(ValueError, match="not found"):
        shared.incr("missing")
    assert shared.delete("token") is True
    assert shared.delete("token") is False
    assert shared.get("token", "default") == "default"
