"""What one request at each REQUEST_MAX_* limit costs the gateway (issue 12.3).

    .venv/bin/python bench/request_limits_bench.py [--repeat 2] [--timeout 60] [--shapes messages,documents,...]

Starts the mock upstream (bench/mock_upstream.py) and the gateway (bench/gateway_server.py: uvicorn,
one process) as bench/gateway_bench.py does (SQLite in a temporary directory, or a throwaway
PostgreSQL database when DATABASE_URL is set), with an application on the default guardrail
policy (injection flag, PII allow) and a team budget, then sends each shape one request at a
time and prints, per request, the wall time until the answer and the gateway process's CPU
(utime + stime from /proc, read once the process is idle again, so that the call recorder's
work after the response is counted too).

Shapes, each at the default limits (1,000 messages, 100 documents, 500,000 characters per text,
1,000,000 characters in all):
- messages: 1,000 short user messages (about 50 characters each), all different;
- documents: 100 documents of 9,800 characters and one short user message;
- one_message: one user message of two 495,000-character text parts;
- many_messages: 1,000 user messages of 980 characters each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The mock upstream listens on loopback, which the egress policy refuses unless allowed.
os.environ.setdefault("EGRESS_ALLOWLIST", "127.0.0.1")
# gateway_bench sets up the environment, the database and the process helpers on import.
from bench.gateway_bench import cpu_seconds, free_port, load_average, set_up_data, start, stop  # noqa: E402

SENTENCE = "Customer {n} asked about the delivery of parcel {n} to the warehouse in the north district. "


def prose(characters: int, *, seed: int) -> str:
    """Plain English sentences (different numbers in each), exactly `characters` long."""
    parts: list[str] = []
    length, n = 0, seed * 100_000
    while length < characters:
        sentence = SENTENCE.format(n=n)
        parts.append(sentence)
        length += len(sentence)
        n += 1
    return "".join(parts)[:characters]


def shapes() -> dict[str, dict[str, Any]]:
    return {
        "messages": {
            "messages": [
                {"role": "user", "content": f"Message {i}: what is the status of order {i}?"} for i in range(1_000)
            ]
        },
        "documents": {
            "messages": [{"role": "user", "content": "Summarise the documents."}],
            "documents": [{"id": f"doc-{i}", "text": prose(9_800, seed=i)} for i in range(100)],
        },
        "one_message": {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": prose(495_000, seed=part)} for part in range(2)],
                }
            ]
        },
        "many_messages": {"messages": [{"role": "user", "content": prose(980, seed=i)} for i in range(1_000)]},
    }


def send(port: int, key: str, body: dict[str, Any], timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=orjson.dumps({"model": "bench-instant", "max_tokens": 16, **body}),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        method="POST",
    )
    try:
        # The URL is built above from 127.0.0.1 and a port, never from input (S310).
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, error.read()[:300].decode(errors="replace")
    except TimeoutError:
        return 0, f"no answer within {timeout:g} s"


def idle_cpu(pid: int, *, quiet_seconds: float = 0.5, limit_seconds: float = 120.0) -> float:
    """The process's CPU seconds once it has used (almost) none for `quiet_seconds`."""
    deadline = time.monotonic() + limit_seconds
    previous = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        current = cpu_seconds(pid)
        if current - previous < 0.02:
            return current
        previous = current
    return previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="requests per shape")
    parser.add_argument("--timeout", type=float, default=60.0, help="client timeout per request, seconds")
    parser.add_argument("--shapes", default="messages,documents,one_message,many_messages")
    args = parser.parse_args()
    from bench._meta import print_header

    print_header()
    upstream_port, gateway_port = free_port(), free_port()
    upstream = start(
        [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(upstream_port)], upstream_port
    )
    key = set_up_data(upstream_port).guardrails
    gateway = start(
        [sys.executable, str(ROOT / "bench" / "gateway_server.py"), "--port", str(gateway_port)], gateway_port
    )
    try:
        status, error = send(gateway_port, key, {"messages": [{"role": "user", "content": "Hello there."}]}, 120)
        if status != 200:
            raise SystemExit(f"the warm-up request failed: {status} {error}")
        idle_cpu(gateway.pid)
        print("default guardrail policy (injection flag, PII allow), team budget, instant mock upstream")
        print(f"{'shape':<15}{'request':>8}{'status':>8}{'wall s':>9}{'server CPU s':>14}   load")
        bodies = shapes()
        for name in args.shapes.split(","):
            body = bodies[name]
            for attempt in range(1, args.repeat + 1):
                before = idle_cpu(gateway.pid)
                started = time.perf_counter()
                status, error = send(gateway_port, key, body, args.timeout)
                wall = time.perf_counter() - started
                used = idle_cpu(gateway.pid) - before
                print(f"{name:<15}{attempt:>8}{status:>8}{wall:>9.2f}{used:>14.2f}   {load_average()}", flush=True)
                if status != 200:
                    print(f"  {error}")
                    break
    finally:
        stop(gateway)
        stop(upstream)


if __name__ == "__main__":
    main()
