"""Eval run throughput and memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x CELERY_BROKER_URL=redis://127.0.0.1:6379/9 \
    CACHE_URL=redis://127.0.0.1:6379/10 .venv/bin/python bench/evals_bench.py [--quick]

What it measures, in one run (on a throwaway PostgreSQL database next to DATABASE_URL's):
- a provider that answers in 200 ms (bench/mock_upstream.py --delay-ms 200, its /slow/ path),
  called through the gateway in the worker's process with the team's eval key, as runs do;
- items per second of a sequential loop (one call after the other, the same gateway client),
  then of a run of ITEMS items (1,000; 200 with --quick) with 1, 2 and 4 Celery worker
  processes (prefork, one chunk task per process at a time); the clock starts when the run
  is created and stops when it is completed; worker start-up and each process's first calls
  (the guardrails load their models) are excluded by a warm-up run;
- memory at 10,000 items (3,000 with --quick): a run scoring recorded outputs (no calls, so
  the executor, not the provider, sets the pace) with one worker process, whose resident set
  size is sampled as the run progresses; it must stay flat.
Needs Redis for the broker and the shared cache (worker processes share them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._meta import print_header  # noqa: E402 - needs ROOT on sys.path

VAR_DIR = tempfile.mkdtemp(prefix="evals-bench-")
SERVER_ENV = {
    "CONTROLPLANE_VAR_DIR": VAR_DIR,
    "DJANGO_SETTINGS_MODULE": "controlplane.settings",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "evals-bench-" + os.urandom(24).hex(),
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "EGRESS_ALLOWLIST": "127.0.0.1",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(SERVER_ENV)
SERVER_URL = os.environ.get("DATABASE_URL", "")
if not SERVER_URL.startswith("postgres") or not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"):
    sys.exit("Set DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL and CACHE_URL (Redis): workers share them.")
BENCH_DB = f"evals_bench_{os.getpid()}"

import psycopg  # noqa: E402

_base, _, _ = SERVER_URL.rpartition("/")
with psycopg.connect(f"{_base}/postgres", autocommit=True) as _admin:
    _admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
os.environ["DATABASE_URL"] = f"{_base}/{BENCH_DB}"

import django  # noqa: E402 - the environment above must be set first

django.setup()

from django.core.management import call_command  # noqa: E402

DELAY_MS = 200
CHUNK_SIZE = 25  # evaluations.services.runs.CHUNK_SIZE


def cleanup() -> None:
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{_base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    shutil.rmtree(VAR_DIR, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the mock upstream did not start")


def workers(count: int) -> subprocess.Popen[bytes]:
    """`count` worker processes (one prefork worker), ready when it answers a ping."""
    from controlplane.celery import app

    name = f"evals-bench-{uuid.uuid4().hex[:6]}@%h"
    process = start(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "controlplane",
            "worker",
            "--pool=prefork",
            f"--concurrency={count}",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "-n",
            name,
        ]
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if any(name.split("@")[0] in next(iter(reply)) for reply in replies):
            return process
    stop(process)
    raise SystemExit("the worker did not start")


def rss_kib(process: subprocess.Popen[bytes]) -> int:
    """Resident set size of the worker and its children (KiB), from /proc."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        pid, parent = int(fields.get("Pid", "0")), int(fields.get("PPid", "0"))
        if pid == process.pid or parent == process.pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0] or 0)
    return total


# Data -----------------------------------------------------------------------------------


def set_up(upstream_port: int) -> dict[str, Any]:
    from django.contrib.auth.models import User

    from accounts.caller import caller_for_user
    from accounts.models import Membership, Role, Team
    from core import crypto
    from core.classification import Clearance
    from evaluations import services
    from gateway.catalog import catalog_changed
    from gateway.models import LanguageModel, Provider

    call_command("migrate", verbosity=0)
    provider = Provider.objects.create(
        name="mock-slow",
        base_url=f"http://127.0.0.1:{upstream_port}/slow/v1",
        api_key_encrypted=crypto.encrypt("mock-upstream-key"),
        read_timeout_seconds=30.0,
        max_retries=0,
    )
    LanguageModel.objects.create(name="bench-slow", provider=provider, provider_model="mock-model")
    catalog_changed()
    team = Team.objects.create(name="bench")
    user = User.objects.create(username="bench-engineer")
    Membership.objects.create(user=user, team=team, role=Role.PROMPT_ENGINEER, clearance=Clearance.CONFIDENTIAL)
    return {"team": team, "caller": caller_for_user(user), "services": services}


def dataset_of(world: dict[str, Any], name: str, count: int) -> Any:
    from evaluations.items import parse_item

    services = world["services"]
    dataset = services.dataset_create(caller=world["caller"], team_id=world["team"].id, name=name)
    for start_at in range(0, count, 5000):
        raws = [
            {"input": {"messages": [{"role": "user", "content": f"Question {n}?"}]}, "expected_output": "Hello"}
            for n in range(start_at, min(count, start_at + 5000))
        ]
        items = [services.NewItem(data=parse_item(raw), where=f"items[{i}]") for i, raw in enumerate(raws)]
        services.dataset_items_change(caller=world["caller"], dataset=dataset, add=items)
    return dataset


def run_of(world: dict[str, Any], dataset: Any, kind: str) -> Any:
    services = world["services"]
    target = (
        services.TargetRequest(kind="model", model="bench-slow")
        if kind == "model"
        else services.TargetRequest(kind="recorded", column="expected_output")
    )
    return services.eval_run_create(
        caller=world["caller"],
        dataset_id=dataset.pk,
        target=target,
        scorers=[services.ScorerRequest(kind="contains", config={"values": ["Hello"]})],
        max_concurrency=256,
    )


def wait_completed(run: Any, timeout: float, on_progress: Any = None) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        run.refresh_from_db()
        if on_progress is not None:
            on_progress(run)
        if run.status == "completed":
            return time.monotonic() - started
        if run.status in ("failed", "cancelled"):
            raise SystemExit(f"run {run.pk} {run.status}: {run.status_message}")
        time.sleep(0.1)
    raise SystemExit(f"run {run.pk} did not complete in {timeout:.0f} s ({run.done_count} done)")


# Measurements ---------------------------------------------------------------------------


def sequential(world: dict[str, Any], count: int) -> float:
    """Items/s of one call after the other through the same in-process gateway client."""
    from evaluations.gateway_client import GatewayClient
    from evaluations.services.keys import eval_key_for, eval_key_secret

    key = eval_key_for(team_id=world["team"].id, clearance=20)

    async def loop() -> float:
        client = GatewayClient(secret=eval_key_secret(key))
        body = {"model": "bench-slow", "messages": [{"role": "user", "content": "Question?"}]}
        await client.complete(body)  # warm up
        started = time.perf_counter()
        for _ in range(count):
            await client.complete(body)
        elapsed = time.perf_counter() - started
        await client.close()
        return count / elapsed

    return asyncio.run(loop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 items, 3,000 for memory, 30 sequential calls")
    arguments = parser.parse_args()
    items = 200 if arguments.quick else 1000
    memory_items = 3000 if arguments.quick else 10_000
    sequential_calls = 30 if arguments.quick else 100
    print_header()
    port = free_port()
    upstream = start(
        [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(port), "--delay-ms", str(DELAY_MS)]
    )
    try:
        wait_for_port(port)
        world = set_up(port)
        print(f"provider answers in {DELAY_MS} ms; {items} items per run; gateway in the worker's process")
        rate = sequential(world, sequential_calls)
        print(f"sequential loop ({sequential_calls} calls): {rate:7.1f} items/s")
        dataset = dataset_of(world, "throughput", items)
        warm = dataset_of(world, "warm-up", 4 * CHUNK_SIZE)
        for count in (1, 2, 4):
            process = workers(count)
            try:
                # Each worker process loads the guardrails' models on its first call: a warm-up run
                # of one chunk per process keeps that out of the figure.
                wait_completed(run_of(world, warm, "model"), timeout=600)
                run = run_of(world, dataset, "model")
                seconds = wait_completed(run, timeout=600)
            finally:
                stop(process)
            print(
                f"{count} worker process{'es' if count > 1 else '  '}: {items / seconds:7.1f} items/s "
                f"({seconds:.1f} s; {run.done_count} done, {run.failed_count} failed; "
                f"x{items / seconds / rate:.1f} the sequential loop)"
            )
        big = dataset_of(world, "memory", memory_items)
        process = workers(1)
        samples: list[tuple[int, int]] = []
        next_mark = [0]

        def sample(progress: Any) -> None:
            done = progress.done_count + progress.failed_count
            if done >= next_mark[0]:
                samples.append((done, rss_kib(process)))
                next_mark[0] += memory_items // 10

        try:
            run = run_of(world, big, "recorded")
            seconds = wait_completed(run, timeout=900, on_progress=sample)
            samples.append((memory_items, rss_kib(process)))
        finally:
            stop(process)
        print(
            f"memory, {memory_items:,} items scored from recorded outputs, 1 worker process "
            f"({memory_items / seconds:.0f} items/s):"
        )
        print("  " + ", ".join(f"{done:,}: {kib / 1024:.0f} MiB" for done, kib in samples))
        growth = (samples[-1][1] - samples[1][1]) / 1024 if len(samples) > 2 else 0.0
        print(f"  growth from the 10% mark to the end: {growth:+.1f} MiB")
    finally:
        stop(upstream)
        cleanup()


if __name__ == "__main__":
    main()
