"""Gateway benchmark: direct-to-upstream vs through the gateway vs through LiteLLM's proxy.

    .venv/bin/python bench/gateway_bench.py [--quick] [--seconds 5] [--litellm-venv var/litellm-venv]

In one run, on 127.0.0.1 only:
- a mock OpenAI-compatible upstream (bench/mock_upstream.py; instant, and 50 ms on /slow/);
- the gateway (bench/gateway_server.py: uvicorn, one process, uvloop + httptools,
  controlplane.asgi:application, DJANGO_DEBUG=false), on a throwaway SQLite database in a
  temporary CONTROLPLANE_VAR_DIR, or on PostgreSQL when DATABASE_URL is set (a throwaway
  database `gateway_bench_<pid>` on that server, dropped at the end; set CACHE_URL=redis://...
  for the shared cache);
- LiteLLM's proxy 1.108.7 in its own virtual environment (created on first use with
  `python3.11 -m venv` + `pip install 'litellm[proxy]==1.108.7'`), one worker, no database.

Each configuration runs closed-loop (N connections, each sending its next request when the
previous answer is complete) for --seconds after a warm-up, with a load generator on a raw
asyncio protocol (uvloop + httptools) in this process, so it costs the shared cores little.
Server CPU per request is read from /proc/<pid>/stat (utime + stime of the process tree).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httptools
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._meta import print_header  # noqa: E402 - needs ROOT on sys.path
from bench._setup import temporary_var_dir, throwaway_database  # noqa: E402 - needs ROOT on sys.path

VAR_DIR = temporary_var_dir("gateway-bench-")
SECRET_KEY = "gateway-bench-" + os.urandom(24).hex()
SERVER_ENV = {
    "CONTROLPLANE_VAR_DIR": VAR_DIR,
    "DJANGO_SETTINGS_MODULE": "controlplane.settings",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "LOG_LEVEL": "WARNING",
    # The mock upstream listens on 127.0.0.1, which the egress rule (core/egress.py) refuses
    # unless the operator allows it.
    "EGRESS_ALLOWLIST": "127.0.0.1",
}
os.environ.update(SERVER_ENV)
SERVER_URL = os.environ.get("DATABASE_URL", "")
throwaway_database(f"gateway_bench_{os.getpid()}")

import django  # noqa: E402 - the environment above must be set first

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

LITELLM_VERSION = "1.108.7"
LITELLM_KEY = "sk-litellm-bench-master-key"
PROMPT = [{"role": "user", "content": "Say hello to the benchmark, briefly."}]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# Processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited at start (code {process.returncode}): {process.args!r}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise SystemExit(f"a server did not listen on {port} within {timeout} s: {process.args!r}")


_processes: list[subprocess.Popen[bytes]] = []


def start(command: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(Path(VAR_DIR) / f"server-{port}.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(command, cwd=ROOT, env=env or os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
    _processes.append(process)
    wait_for_port(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@atexit.register
def _stop_all() -> None:
    for process in _processes:
        stop(process)


def tree_pids(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    pids, pending = [], [root]
    while pending:
        pid = pending.pop()
        pids.append(pid)
        pending.extend(parents.get(pid, []))
    return pids


def cpu_seconds(root: int) -> float:
    """utime + stime of a process and its descendants, in seconds."""
    total = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# Data -----------------------------------------------------------------------------------


@dataclass
class Keys:
    main: str  # recording + budget on, guardrails off: the configuration the targets are about
    no_budget: str  # recording on, no budget, guardrails off
    guardrails: str  # recording + budget on, the default guardrail policy (injection flag + PII scan)


def set_up_data(upstream_port: int) -> Keys:
    from accounts.models import Application, Role, Team
    from accounts.services import api_key_create
    from compliance.guardrails.models import GuardrailPolicy, InjectionAction, PiiAction
    from core import crypto
    from costs.services import budget_create, price_set
    from gateway.models import LanguageModel, Provider

    call_command("migrate", verbosity=0)
    for name, path in (("bench-instant", "/v1"), ("bench-slow", "/slow/v1")):
        provider = Provider.objects.create(
            name=f"mock-{name}",
            base_url=f"http://127.0.0.1:{upstream_port}{path}",
            api_key_encrypted=crypto.encrypt("mock-upstream-key"),
            read_timeout_seconds=30.0,
            max_retries=0,
        )
        LanguageModel.objects.create(name=name, provider=provider, provider_model="mock-model")
        price_set(
            caller=None,
            model=name,
            input_per_million=Decimal("0.15"),
            output_per_million=Decimal("0.60"),
            effective_from=timezone.now() - timedelta(days=1),
        )

    def key_for(team: Team, name: str, *, guardrails_off: bool) -> str:
        application = Application.objects.create(team=team, name=name)
        if guardrails_off:
            GuardrailPolicy.objects.create(
                application=application,
                pii_input=PiiAction.ALLOW,
                pii_output=PiiAction.ALLOW,
                injection=InjectionAction.OFF,
            )
        _, secret = api_key_create(caller=None, application=application, name=name, role=Role.APPLICATION)
        return secret

    budgeted = Team.objects.create(name="Bench budgeted")
    budget_create(
        caller=None, team=budgeted, name="bench cap", scope="team", period="monthly", amount_usd=Decimal("900000")
    )
    unbudgeted = Team.objects.create(name="Bench unbudgeted")
    return Keys(
        main=key_for(budgeted, "bench-main", guardrails_off=True),
        no_budget=key_for(unbudgeted, "bench-no-budget", guardrails_off=True),
        guardrails=key_for(budgeted, "bench-guardrails", guardrails_off=False),
    )


def ensure_litellm(venv: Path) -> Path:
    executable = venv / "bin" / "litellm"
    if not executable.exists():
        print(f"creating {venv} with litellm[proxy]=={LITELLM_VERSION} (one time)...", flush=True)
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != LITELLM_VERSION:
        raise SystemExit(f"{venv} has litellm {version}, not the vetted {LITELLM_VERSION}; remove it and rerun.")
    return executable


def litellm_config(upstream_port: int) -> Path:
    lines = ["model_list:"]
    for name, path in (("bench-instant", "/v1"), ("bench-slow", "/slow/v1")):
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            "      model: openai/mock-model",
            f"      api_base: http://127.0.0.1:{upstream_port}{path}",
            "      api_key: mock-upstream-key",
            "      max_retries: 0",
        ]
    lines += [
        "litellm_settings:",
        "  telemetry: false",
        "  num_retries: 0",
        "  request_timeout: 30",
        "general_settings:",
        f"  master_key: {LITELLM_KEY}",
    ]
    config = Path(VAR_DIR) / "litellm.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


# Load generator -------------------------------------------------------------------------


class ClientConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None
        self.status = 0
        self.first_body: float | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("connection closed"))

    def _fail(self, error: BaseException) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(error)
        self.transport = None

    def on_status(self, status: bytes) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.first_body is None:
            self.first_body = time.perf_counter()
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def request(self, raw: bytes) -> tuple[int, float | None, bytes]:
        assert self.transport is not None
        self.status, self.first_body, self.body = 0, None, []
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        await self.done
        return self.status, self.first_body, b"".join(self.body)


@dataclass
class Target:
    name: str
    port: int
    path: str  # the chat completions path
    model: str
    authorization: str
    pid: int | None  # the server process whose CPU is measured


def raw_request(target: Target, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": target.model, "messages": PROMPT, "max_tokens": 16}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    payload = orjson.dumps(body)
    head = (
        f"POST {target.path} HTTP/1.1\r\nhost: 127.0.0.1:{target.port}\r\n"
        f"authorization: Bearer {target.authorization}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


@dataclass
class Run:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms
    first_chunks: list[float] = field(default_factory=list)  # ms, streaming
    server_cpu: float = 0.0  # s
    upstream_cpu: float = 0.0  # s
    client_cpu: float = 0.0  # s
    error_sample: str = ""

    def pct(self, share: float, values: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if values is None else values)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def per_request_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.requests if self.requests else float("nan")


async def load(
    target: Target, *, stream: bool, concurrency: int, seconds: float, warmup: float, cap: int, upstream_pid: int
) -> Run:
    loop = asyncio.get_running_loop()
    raw = raw_request(target, stream)
    connections = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(ClientConnection, "127.0.0.1", target.port)
        connections.append(protocol)
    run = Run()
    measuring = False
    deadline = 0.0

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline and run.requests < cap:
            connection = connections[index]
            if connection.transport is None:  # the server closed it: reconnect
                _, connection = await loop.create_connection(ClientConnection, "127.0.0.1", target.port)
                connections[index] = connection
            started = time.perf_counter()
            try:
                status, first, body = await connection.request(raw)
            except Exception as error:  # noqa: BLE001 - a failed request is counted, not fatal
                if measuring:
                    run.requests += 1
                    run.errors += 1
                    run.error_sample = run.error_sample or repr(error)
                continue
            ended = time.perf_counter()
            ok = status == 200 and (b"[DONE]" in body if stream else b'"choices"' in body)
            if measuring:
                run.requests += 1
                if not ok:
                    run.errors += 1
                    run.error_sample = run.error_sample or f"{status}: {body[:200]!r}"
                    continue
                run.latencies.append((ended - started) * 1000)
                if stream and first is not None:
                    run.first_chunks.append((first - started) * 1000)

    deadline = time.perf_counter() + warmup
    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    measuring = True
    server_before = cpu_seconds(target.pid) if target.pid else 0.0
    upstream_before = cpu_seconds(upstream_pid)
    client_before = client_cpu_seconds()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    run.seconds = time.perf_counter() - started
    run.client_cpu = client_cpu_seconds() - client_before
    run.upstream_cpu = cpu_seconds(upstream_pid) - upstream_before
    run.server_cpu = (cpu_seconds(target.pid) - server_before) if target.pid else 0.0
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    return run


# Report ---------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN -> "-"


HEADER = (
    f"{'target':<10}{'req/s':>8}{'p50':>8}{'p99':>8}{'+p50':>8}{'+p99':>8}{'ttfc50':>8}{'+ttfc':>8}"
    f"{'err':>6}{'cpu/req':>9}{'up cpu':>8}{'cli cpu':>8}"
)


def row(name: str, run: Run, direct: Run | None) -> str:
    p50, p99 = run.pct(0.5), run.pct(0.99)
    ttfc = run.pct(0.5, run.first_chunks) if run.first_chunks else float("nan")
    add50 = p50 - direct.pct(0.5) if direct else float("nan")
    add99 = p99 - direct.pct(0.99) if direct else float("nan")
    add_ttfc = ttfc - direct.pct(0.5, direct.first_chunks) if direct and direct.first_chunks else float("nan")
    server = run.per_request_ms(run.server_cpu) if name != "direct" else float("nan")
    return (
        f"{name:<10}{run.rps:>8.0f}{fmt(p50, 2):>8}{fmt(p99, 2):>8}{fmt(add50, 2):>8}{fmt(add99, 2):>8}"
        f"{fmt(ttfc, 2):>8}{fmt(add_ttfc, 2):>8}{run.errors:>6}{fmt(server, 2):>9}"
        f"{fmt(run.per_request_ms(run.upstream_cpu), 2):>8}{fmt(run.per_request_ms(run.client_cpu), 2):>8}"
    )


def ratio_line(gateway: Run, litellm: Run, direct: Run) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b and a == a and b == b else "-"

    return (
        f"  gateway vs LiteLLM: req/s {ratio(gateway.rps, litellm.rps)}, "
        f"added p50 {ratio(gateway.pct(0.5) - direct.pct(0.5), litellm.pct(0.5) - direct.pct(0.5))}, "
        f"CPU/req {ratio(gateway.per_request_ms(gateway.server_cpu), litellm.per_request_ms(litellm.server_cpu))}"
    )


# Main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1.5 s per configuration instead of --seconds")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per configuration")
    parser.add_argument("--max-requests", type=int, default=20_000, help="cap per configuration")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--litellm-venv", type=Path, default=ROOT / "var" / "litellm-venv")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--no-variants", action="store_true", help="skip the budget/recording/guardrails variants")
    parser.add_argument("--only-gateway", action="store_true", help="measure the gateway only (profiling)")
    args = parser.parse_args()
    print_header()
    seconds = 1.5 if args.quick else args.seconds
    warmup = 0.3 if args.quick else 1.0
    levels = [int(level) for level in args.concurrency.split(",")]

    upstream_port, gateway_port, bare_port, litellm_port = (free_port() for _ in range(4))
    upstream = start(
        [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(upstream_port)], upstream_port
    )
    keys = set_up_data(upstream_port)
    database = "PostgreSQL" if SERVER_URL.startswith("postgres") else "SQLite"
    server_command = [sys.executable, str(ROOT / "bench" / "gateway_server.py")]
    gateway = start([*server_command, "--port", str(gateway_port)], gateway_port)
    litellm = None
    if not args.no_litellm and not args.only_gateway:
        executable = ensure_litellm(args.litellm_venv)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(Path.home()),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MODE": "PRODUCTION",
            "DISABLE_SCHEMA_UPDATE": "True",
        }
        litellm = start(
            [
                str(executable),
                "--config",
                str(litellm_config(upstream_port)),
                "--host",
                "127.0.0.1",
                "--port",
                str(litellm_port),
                "--num_workers",
                "1",
                "--telemetry",
                "False",
            ],
            litellm_port,
            env,
        )

    def run(target: Target, stream: bool, concurrency: int) -> Run:
        return uvloop.run(
            load(
                target,
                stream=stream,
                concurrency=concurrency,
                seconds=seconds,
                warmup=warmup,
                cap=args.max_requests,
                upstream_pid=upstream.pid,
            )
        )

    print(
        f"gateway benchmark: {database}, cache {os.environ.get('CACHE_URL', 'locmem')}, {seconds:g} s per "
        f"configuration (cap {args.max_requests} requests), concurrency {levels}, {os.cpu_count()} CPUs"
    )
    print(f"load average at start: {load_average()}")
    print(
        "columns: latency in ms (closed loop); +p50/+p99/+ttfc = added vs direct at the same concurrency; ttfc50 = "
        "time to the first streamed chunk, p50; cpu/req = server process CPU ms per request; up cpu = mock "
        "upstream; cli cpu = this load generator"
    )
    results: dict[tuple[str, bool, int, str], Run] = {}
    for upstream_name, model, prefix in (("instant", "bench-instant", ""), ("50 ms", "bench-slow", "/slow")):
        targets = [Target("direct", upstream_port, f"{prefix}/v1/chat/completions", "mock-model", "x", None)]
        targets.append(Target("gateway", gateway_port, "/v1/chat/completions", model, keys.main, gateway.pid))
        if litellm is not None:
            targets.append(Target("litellm", litellm_port, "/v1/chat/completions", model, LITELLM_KEY, litellm.pid))
        if args.only_gateway:
            targets = targets[1:2]
        for stream in (False, True):
            for concurrency in levels:
                print(
                    f"\n[{upstream_name} upstream, {'streamed' if stream else 'non-streamed'}, "
                    f"concurrency {concurrency}]  load {load_average()}"
                )
                print(HEADER)
                for target in targets:
                    result = run(target, stream, concurrency)
                    results[(upstream_name, stream, concurrency, target.name)] = result
                    direct = results.get((upstream_name, stream, concurrency, "direct"))
                    print(row(target.name, result, direct), flush=True)
                    if result.error_sample:
                        print(f"  first error: {result.error_sample}")
                if litellm is not None and not args.only_gateway:
                    print(
                        ratio_line(
                            results[(upstream_name, stream, concurrency, "gateway")],
                            results[(upstream_name, stream, concurrency, "litellm")],
                            results[(upstream_name, stream, concurrency, "direct")],
                        )
                    )

    if not args.no_variants and not args.only_gateway:
        stop(gateway)
        bare = start([*server_command, "--port", str(bare_port), "--discard-records"], bare_port)
        gateway = start([*server_command, "--port", str(gateway_port)], gateway_port)
        variants = [
            ("target", Target("target", gateway_port, "/v1/chat/completions", "bench-instant", keys.main, gateway.pid)),
            (
                "no budget",
                Target("no budget", gateway_port, "/v1/chat/completions", "bench-instant", keys.no_budget, gateway.pid),
            ),
            (
                "no record",
                Target("no record", bare_port, "/v1/chat/completions", "bench-instant", keys.main, bare.pid),
            ),
            (
                "guardrail",
                Target(
                    "guardrail", gateway_port, "/v1/chat/completions", "bench-instant", keys.guardrails, gateway.pid
                ),
            ),
        ]
        print(
            "\nVariants (instant upstream): target = recording + budget on, guardrails off; no budget = a team "
            "without budgets; no record = recorder.submit is a no-op in that server; guardrail = default policy "
            "(injection flag + PII scan)"
        )
        for stream in (False, True):
            for concurrency in (1, 16):
                print(
                    f"\n[variants, {'streamed' if stream else 'non-streamed'}, concurrency {concurrency}]  "
                    f"load {load_average()}"
                )
                print(HEADER)
                direct = run(
                    Target("direct", upstream_port, "/v1/chat/completions", "mock-model", "x", None),
                    stream,
                    concurrency,
                )
                print(row("direct", direct, direct))
                for _, target in variants:
                    result = run(target, stream, concurrency)
                    print(row(target.name, result, direct), flush=True)
                    if result.error_sample:
                        print(f"  first error: {result.error_sample}")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
