"""Benchmarks: plain scripts run as ``.venv/bin/python -m bench.NAME``; each writes bench/results/NAME.json."""
