"""The project in another process: a server started for tests that kill or signal it, and
manage.py commands run as an operator would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def server_process(command: list[str], *, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` (our own scripts, fixed arguments), wait until it listens on `port`,
    and kill it afterwards whatever the test did to it."""
    process = subprocess.Popen(  # noqa: S603 - our own server scripts with fixed arguments
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    stderr = process.communicate()[1].decode(errors="replace")
                    pytest.fail(f"{' '.join(command)} did not start: {stderr[-2000:]}")
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def manage(*arguments: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`manage.py <arguments>` in a new process with `env` as its whole environment; the caller
    asserts on the return code and output."""
    return subprocess.run(  # noqa: S603 - our own manage.py with the test's arguments
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def database_url_of_test_run() -> str:
    """DATABASE_URL for a child process that must use this test run's database."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user, host, port = settings["USER"] or "postgres", settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{user}@{host}:{port}/{settings['NAME']}"


def env_of_test_run(**extra: str) -> dict[str, str]:
    """This process's environment for a child process of the project that must use this test
    run's settings and database, with `extra` on top."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings_test",
        "DATABASE_URL": database_url_of_test_run(),
        **extra,
    }
