"""Prompt registry benchmark: resolve + render latency (in process and over HTTP) against a
primary-key read of the version row, and token counting throughput.

Run: .venv/bin/python bench/prompts_bench.py [--iterations 2000]

Sets up its own data in a throwaway SQLite database; "over HTTP" is a real uvicorn server
on 127.0.0.1 with one keep-alive connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _measure  # noqa: E402 - needs ROOT on sys.path
from bench._meta import print_header  # noqa: E402 - needs ROOT on sys.path
from bench._setup import in_process_environment  # noqa: E402 - needs ROOT on sys.path

in_process_environment("prompts-bench-", is_local=True)
os.environ["API_THROTTLE_RATE"] = "100000000/minute"

import django  # noqa: E402 - the environment above must be set first

django.setup()

from django.core.management import call_command  # noqa: E402

from accounts.caller import caller_for_api_key  # noqa: E402
from accounts.models import Application, Team  # noqa: E402
from accounts.services import api_key_create  # noqa: E402
from prompts import selectors, services, tokens  # noqa: E402
from prompts.models import PromptVersion  # noqa: E402

VARIABLES = {"product": "Acme Cloud", "customer_name": "Ada Lovelace", "question": "How do I rotate my API key?"}
DOCUMENTS = [
    {"id": f"doc-{index}", "text": f"Article {index}: rotating keys, billing, regions and quotas. " * 8}
    for index in range(8)
]
HISTORY = [
    {"role": "user" if index % 2 == 0 else "assistant", "content": f"Turn {index}: a short message."}
    for index in range(6)
]


def measure(function: Callable[[], object], iterations: int) -> tuple[float, float]:
    return _measure.measure(lambda _index: function(), iterations, warm_up=50)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    iterations = parser.parse_args().iterations
    print_header()

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="Bench")
    application = Application.objects.create(team=team, name="bench-app")
    api_key, secret = api_key_create(caller=None, application=application, name="bench")
    caller = caller_for_api_key(api_key)
    prompt = services.prompt_create(caller=None, team=team, name="support")
    version, _ = services.prompt_version_create(
        caller=None,
        prompt=prompt,
        messages=[
            {"role": "system", "content": "You are the support agent of {{ product }}. Answer in two sentences."},
            {"role": "user", "content": "{{ customer_name }} asks: {{ question }}"},
        ],
        params={"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 300},
        context_budget={"context_window": 4000, "output_reserve": 300, "documents_share": 0.5},
    )
    services.label_move(caller=None, prompt=prompt, label="production", version=version)

    def resolve_and_render() -> object:
        resolved = selectors.prompt_resolve(caller=caller, name="support", label="production")
        return selectors.prompt_render(
            caller=caller, resolved=resolved, variables=VARIABLES, documents=DOCUMENTS, history=HISTORY
        )

    def resolve_only() -> object:
        return selectors.prompt_resolve(caller=caller, name="support", label="production")

    def render_small() -> object:
        resolved = selectors.prompt_resolve(caller=caller, name="support", label="production")
        return selectors.prompt_render(caller=caller, resolved=resolved, variables=VARIABLES)

    def primary_key_read() -> object:
        return PromptVersion.objects.get(pk=version.pk)

    rows = [
        ("in process: resolve (cached)", measure(resolve_only, iterations)),
        ("in process: resolve + render, no documents", measure(render_small, iterations)),
        ("in process: resolve + render, 8 documents + 6 turns", measure(resolve_and_render, iterations)),
        ("in process: baseline PromptVersion by primary key", measure(primary_key_read, iterations)),
    ]

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "controlplane.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(100):
            try:
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                break
            except OSError:
                connection.close()
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        render_body = json.dumps(
            {"label": "production", "variables": VARIABLES, "documents": DOCUMENTS, "history": HISTORY}
        )

        def http_call(method: str, path: str, body: str | None = None) -> Callable[[], object]:
            def call() -> object:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{method} {path} -> {response.status}: {payload[:300]!r}")
                return payload

            return call

        http_iterations = max(200, iterations // 4)
        rows += [
            ("HTTP: GET /healthz (server floor)", measure(http_call("GET", "/healthz"), http_iterations)),
            (
                "HTTP: GET .../resolve/?label=production",
                measure(http_call("GET", "/api/v1/prompts/support/resolve/?label=production"), http_iterations),
            ),
            (
                "HTTP: POST .../render/ (8 documents + 6 turns)",
                measure(http_call("POST", "/api/v1/prompts/support/render/", render_body), http_iterations),
            ),
            (
                "HTTP: baseline GET .../versions/1/ (row by key)",
                measure(http_call("GET", "/api/v1/prompts/support/versions/1/"), http_iterations),
            ),
        ]
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"Prompt registry benchmark ({iterations} in-process iterations, SQLite, locmem cache, 1 uvicorn worker)")
    print(f"{'':56} {'p50 ms':>9} {'p99 ms':>9}")
    for name, (p50, p99) in rows:
        print(f"{name:56} {p50:9.3f} {p99:9.3f}")

    print("\nToken counting (200 texts of 400 random words, count_text path without its cache):")
    # Varied words, so that no per-word cache inside the encoder flatters the figure.
    generator = random.Random(7)
    words = [
        "".join(generator.choice(string.ascii_lowercase) for _ in range(generator.randint(2, 10))) for _ in range(5000)
    ]
    for model in ("gpt-4o", "gpt-3.5-turbo"):
        encoding = tokens._encoding(tokens.encoding_name_for(model))
        texts = [" ".join(generator.choice(words) for _ in range(400)) + "." for _ in range(200)]
        started = time.perf_counter()
        counted = sum(len(encoding.encode(text)) for text in texts)
        elapsed = time.perf_counter() - started
        print(
            f"  {model:14} {tokens.encoding_name_for(model):12} {counted / elapsed:12,.0f} tokens/s "
            f"({len(''.join(texts)) / elapsed / 1e6:.2f} MB/s)"
        )


if __name__ == "__main__":
    main()
