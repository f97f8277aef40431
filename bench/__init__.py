"""Benchmarks: plain scripts, each writing JSON to bench/results/ and printing a one-line summary."""
