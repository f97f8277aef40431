"""`python -m bench.run_all --help` works (the benchmarks themselves are not tests: `make bench` runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_run_all_help_names_the_quick_mode_and_the_page_it_writes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout
    assert "docs/performance.md" in done.stdout
