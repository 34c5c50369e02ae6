"""A fast OpenAI-compatible mock upstream for the gateway benchmark.

    .venv/bin/python bench/mock_upstream.py --port 18001

One process, uvloop + httptools on a raw asyncio protocol (no framework, so that it costs
the shared 2 cores as little as possible). HTTP/1.1 keep-alive, one request at a time per
connection. Paths:

- `POST /v1/chat/completions`: answers at once; `POST /slow/v1/chat/completions` answers
  after 50 ms (`--delay-ms`). `"stream": true` answers as SSE (role chunk, 4 content chunks,
  finish chunk, a usage chunk when `stream_options.include_usage`, `[DONE]`), chunked.
- `GET /v1/models` (and `/slow/v1/models`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httptools
import orjson
import uvloop

WORDS = ["Hello", " from", " the", " mock"]


def completion(model: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(WORDS)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
        }
    )


def stream_events(model: str, include_usage: bool) -> list[bytes]:
    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    ]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]} for word in WORDS]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        chunks.append(
            {**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}
        )
    return [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"]


def chunked(events: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


class UpstreamProtocol(asyncio.Protocol):
    delay = 0.05

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url, body, method = self.url, b"".join(self.body), self.parser.get_method()
        self.url, self.body = b"", []
        slow = url.startswith(b"/slow/")
        path = url[5:] if slow else url
        if slow:
            asyncio.get_running_loop().call_later(self.delay, self.respond, method, path, body)
        else:
            self.respond(method, path, body)

    def respond(self, method: bytes, path: bytes, body: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if method == b"POST" and path.startswith(b"/v1/chat/completions"):
            try:
                request = orjson.loads(body)
            except orjson.JSONDecodeError:
                request = {}
            model = str(request.get("model") or "mock-model")
            if request.get("stream"):
                include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                    + chunked(stream_events(model, include_usage))
                )
                return
            self.send(transport, 200, completion(model))
        elif method == b"GET" and path.startswith(b"/v1/models"):
            self.send(
                transport,
                200,
                b'{"object":"list","data":[{"id":"mock-model","object":"model","created":0,"owned_by":"mock"}]}',
            )
        else:
            self.send(transport, 404, b'{"error":{"message":"not found","type":"invalid_request_error"}}')

    @staticmethod
    def send(transport: asyncio.Transport, status: int, payload: bytes) -> None:
        reason = b"OK" if status == 200 else b"Not Found"
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (status, reason, len(payload), payload)
        )


async def serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(UpstreamProtocol, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=50.0, help="delay of the /slow/ paths")
    args = parser.parse_args()
    UpstreamProtocol.delay = args.delay_ms / 1000
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
