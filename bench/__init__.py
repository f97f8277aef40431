"""Benchmarks: plain scripts run as `.venv/bin/python -m bench.NAME`, each writing bench/results/NAME.json."""
