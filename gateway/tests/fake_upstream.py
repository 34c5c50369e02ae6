"""A fake remote model provider: a real HTTP server, in a thread, speaking the OpenAI protocol.

Standard library only (http.server.ThreadingHTTPServer), so that tests exercise the real
`openai` SDK and the real network path. Tests script its behaviour per request:

    with FakeUpstream() as upstream:
        upstream.enqueue(fail(429, retry_after=1), reply("Hello"))  # first call 429, then a reply
        client = openai.OpenAI(base_url=upstream.base_url, api_key="k")
        ...
        assert upstream.requests[-1].body["model"] == "fake-model"

Each `/v1/chat/completions` request takes the next scripted behaviour (or `default` when
the script is empty); `/v1/models` has its own script (`enqueue_models`). A request with
`"stream": true` is answered as SSE chunks (with a usage chunk when
`stream_options.include_usage` is set) unless the behaviour is a failure.

Behaviours:
- `reply(content, delay_seconds=, chunk_delay_seconds=, prompt_tokens=, completion_tokens=,
  cached_tokens=, finish_reason=, break_after_chunks=)`: a normal answer, optionally slow,
  optionally cut off mid-stream (the connection closes after N content chunks).
- `fail(status, message=, retry_after=, error_type=, code=)`: an OpenAI-shaped error.
- `hang(seconds=)`: accept the request and never answer (until `seconds` or shutdown).
- `drop()`: close the connection without any answer (a connection error for the client).
- `raw(body, status=)`: send these bytes as the JSON answer, whatever they hold (a malformed provider).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Behaviour", "FakeUpstream", "RecordedRequest", "drop", "fail", "hang", "raw", "reply"]


@dataclass(frozen=True)
class Behaviour:
    kind: str  # "reply" | "fail" | "hang" | "drop" | "raw"
    content: str = "Hello from the fake upstream."
    delay_seconds: float = 0.0
    chunk_delay_seconds: float = 0.0
    prompt_tokens: int | None = None  # None: counted from the request (words)
    completion_tokens: int | None = None  # None: the number of content chunks (words)
    cached_tokens: int = 0
    finish_reason: str = "stop"
    break_after_chunks: int | None = None
    status: int = 200
    message: str = ""
    retry_after: float | None = None
    error_type: str = ""
    code: str | None = None
    hang_seconds: float = 60.0


def reply(
    content: str = "Hello from the fake upstream.",
    *,
    delay_seconds: float = 0.0,
    chunk_delay_seconds: float = 0.0,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    cached_tokens: int = 0,
    finish_reason: str = "stop",
    break_after_chunks: int | None = None,
) -> Behaviour:
    return Behaviour(
        kind="reply",
        content=content,
        delay_seconds=delay_seconds,
        chunk_delay_seconds=chunk_delay_seconds,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        finish_reason=finish_reason,
        break_after_chunks=break_after_chunks,
    )


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


def fail(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    error_type: str | None = None,
    code: str | None = None,
    delay_seconds: float = 0.0,
) -> Behaviour:
    return Behaviour(
        kind="fail",
        status=status,
        message=message or f"Fake upstream failure ({status}).",
        retry_after=retry_after,
        error_type=error_type or _ERROR_TYPES.get(status, "server_error"),
        code=code,
        delay_seconds=delay_seconds,
    )


def hang(seconds: float = 60.0) -> Behaviour:
    return Behaviour(kind="hang", hang_seconds=seconds)


def drop() -> Behaviour:
    return Behaviour(kind="drop")


def raw(body: str, *, status: int = 200) -> Behaviour:
    return Behaviour(kind="raw", content=body, status=status)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or None
    client_port: int = 0  # the connection it came on: the same port twice means a reused connection

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


@dataclass
class _State:
    chat_script: deque[Behaviour] = field(default_factory=deque)
    models_script: deque[Behaviour] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeUpstream:
    """Start with `with FakeUpstream() as upstream:` (or `start()` / `stop()`)."""

    def __init__(
        self,
        *,
        models: list[str] | None = None,
        api_key: str | None = None,
        default: Behaviour | None = None,
    ) -> None:
        self.models = list(models or ["fake-model"])
        self.api_key = api_key  # when set, other bearer tokens get 401
        self.default = default or reply()
        self._state = _State()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle -------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake upstream first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # Scripting -------------------------------------------------------------------

    def enqueue(self, *behaviours: Behaviour) -> None:
        """The next chat completion requests get these behaviours, in order."""
        with self._state.lock:
            self._state.chat_script.extend(behaviours)

    def enqueue_models(self, *behaviours: Behaviour) -> None:
        """The next GET /v1/models requests get these (a `reply` lists `models`)."""
        with self._state.lock:
            self._state.models_script.extend(behaviours)

    def reset(self) -> None:
        with self._state.lock:
            self._state.chat_script.clear()
            self._state.models_script.clear()
            self._state.requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def chat_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.endswith("/chat/completions")]

    def _next(self, route: str) -> Behaviour:
        with self._state.lock:
            script = self._state.chat_script if route == "chat" else self._state.models_script
            if script:
                return script.popleft()
        return self.default if route == "chat" else reply()

    def _record(self, request: RecordedRequest) -> None:
        with self._state.lock:
            self._state.requests.append(request)


def _words(text: str) -> list[str]:
    """Content chunks: each word with its leading space, so that they join back to `text`."""
    pieces: list[str] = []
    for index, word in enumerate(text.split(" ")):
        pieces.append(word if index == 0 else f" {word}")
    return [piece for piece in pieces if piece]


def _prompt_tokens(body: Any) -> int:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return 0
    return sum(len(str(message.get("content", "")).split()) for message in messages if isinstance(message, dict))


def _make_handler(upstream: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeUpstream/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests read `upstream.requests` instead

        # Routing -----------------------------------------------------------------

        def do_GET(self) -> None:
            self._handle(body=None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                self._send_json(400, _error_body("The request body is not valid JSON.", "invalid_request_error"))
                return
            self._handle(body=body)

        def _handle(self, *, body: Any) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            upstream._record(
                RecordedRequest(
                    method=self.command,
                    path=path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    client_port=self.client_address[1],
                )
            )
            if upstream.api_key is not None and self.headers.get("Authorization") != f"Bearer {upstream.api_key}":
                self._send_json(
                    401,
                    _error_body("Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"),
                )
                return
            if self.command == "GET" and path.endswith("/models"):
                self._perform(upstream._next("models"), route="models", body=body)
            elif self.command == "POST" and path.endswith("/chat/completions"):
                self._perform(upstream._next("chat"), route="chat", body=body)
            else:
                self._send_json(404, _error_body(f"Unknown path {self.command} {path}.", "invalid_request_error"))

        # Behaviours --------------------------------------------------------------

        def _perform(self, behaviour: Behaviour, *, route: str, body: Any) -> None:
            if behaviour.kind == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if behaviour.kind == "hang":
                upstream._stopping.wait(behaviour.hang_seconds)
                self.close_connection = True
                return
            if behaviour.delay_seconds and upstream._stopping.wait(behaviour.delay_seconds):
                return
            if behaviour.kind == "raw":
                self._send_bytes(behaviour.status, behaviour.content.encode())
                return
            if behaviour.kind == "fail":
                headers = {}
                if behaviour.retry_after is not None:
                    headers["Retry-After"] = f"{behaviour.retry_after:g}"
                self._send_json(
                    behaviour.status,
                    _error_body(behaviour.message, behaviour.error_type, code=behaviour.code),
                    headers=headers,
                )
                return
            if route == "models":
                data = [{"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in upstream.models]
                self._send_json(200, {"object": "list", "data": data})
                return
            request = body if isinstance(body, dict) else {}
            if request.get("stream"):
                self._stream(behaviour, request)
            else:
                self._send_json(200, _completion(behaviour, request))

        def _stream(self, behaviour: Behaviour, request: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")  # kept alive, as real providers do
            self.end_headers()
            identity = f"chatcmpl-fake-{time.monotonic_ns()}"
            model = str(request.get("model", "fake-model"))
            pieces = _words(behaviour.content)

            def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
                return {
                    "id": identity,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }

            try:
                self._event(chunk({"role": "assistant", "content": ""}))
                for index, piece in enumerate(pieces):
                    if behaviour.break_after_chunks is not None and index >= behaviour.break_after_chunks:
                        self.close_connection = True
                        self.connection.close()
                        return
                    if behaviour.chunk_delay_seconds and upstream._stopping.wait(behaviour.chunk_delay_seconds):
                        self.close_connection = True
                        return
                    self._event(chunk({"content": piece}))
                self._event(chunk({}, behaviour.finish_reason))
                options = request.get("stream_options")
                if isinstance(options, dict) and options.get("include_usage"):
                    self._event(
                        {
                            "id": identity,
                            "object": "chat.completion.chunk",
                            "created": int(time.time()),
                            "model": model,
                            "choices": [],
                            "usage": _usage(behaviour, request, len(pieces)),
                        }
                    )
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")  # the end of the chunked body
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return  # the client went away mid-stream

        def _event(self, payload: dict[str, Any]) -> None:
            self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self._send_bytes(status, json.dumps(payload).encode(), headers)

        def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


def _error_body(message: str, error_type: str, *, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _usage(behaviour: Behaviour, request: dict[str, Any], chunks: int) -> dict[str, Any]:
    prompt_tokens = behaviour.prompt_tokens if behaviour.prompt_tokens is not None else _prompt_tokens(request)
    completion_tokens = behaviour.completion_tokens if behaviour.completion_tokens is not None else chunks
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": behaviour.cached_tokens},
    }


def _completion(behaviour: Behaviour, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.get("model", "fake-model")),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": behaviour.content},
                "finish_reason": behaviour.finish_reason,
            }
        ],
        "usage": _usage(behaviour, request, len(_words(behaviour.content))),
    }


def running(**options: Any) -> Iterator[FakeUpstream]:
    """For a pytest fixture: `yield from running()`."""
    with FakeUpstream(**options) as upstream:
        yield upstream
