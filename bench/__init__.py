"""Benchmarks (not tests): each writes bench/results/NAME.json and prints a one-line summary."""
