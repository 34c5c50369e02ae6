"""The line every benchmark prints first, so that a figure copied into bench/README.md carries
the date, the commit and the machine's load it was measured under.

    from _meta import print_header  # bench/ is on sys.path when a script runs as bench/x.py
    print_header()

prints, for example:

    # bench/cache_bench.py --sizes 10000 | 2026-12-02 11:40 UTC | commit db733f3 (+ uncommitted changes)
    # | load average 2.40 0.95 0.39 (1/5/15 min) on 2 cores

and, when the process exits, the load average again (a shared machine's load moves during a run).
"""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """`git rev-parse --short HEAD`, marked when the work tree has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"{head} (+ uncommitted changes)" if changed else head


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def header() -> str:
    command = " ".join(shlex.quote(argument) for argument in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"# {command} | {now} | commit {commit()} | {load()}"


def print_header() -> None:
    """Print the header line now and the load average again when the process exits."""
    print(header(), flush=True)
    atexit.register(lambda: print(f"# at exit: {load()}", flush=True))
