"""Runs the gateway for bench/gateway_bench.py: uvicorn, one process, uvloop + httptools,
`controlplane.asgi:application` (what `uvicorn controlplane.asgi:application --loop uvloop
--http httptools` runs), with the environment the benchmark sets.

    python bench/gateway_server.py --port 18002 [--discard-records]

`--discard-records` replaces the call recorder's `submit` with a no-op in this server
process only (no spool line, no queue, no database write): the benchmark's "recording off"
variant, to measure what recording a call costs. Never used outside the benchmark.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--discard-records", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

    import uvicorn

    if args.discard_records:
        import django

        django.setup()
        from observability.recorder import CallRecorder

        def discard(self: CallRecorder, record: dict[str, object]) -> None:
            return None

        CallRecorder.submit = discard  # type: ignore[method-assign] # benchmark variant: recording off

    uvicorn.run(
        "controlplane.asgi:application",
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=2048,
    )


if __name__ == "__main__":
    main()
