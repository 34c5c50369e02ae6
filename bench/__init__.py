"""Benchmarks: each script runs as `.venv/bin/python bench/NAME.py` (see bench/README.md)."""
