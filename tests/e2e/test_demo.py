"""The README's first command: `crmbridge demo` runs both emulators and every flow to its summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_runs_every_flow_to_its_summary(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crmbridge", "demo", "--size", "80", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "160"},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rows = {m.group(1): [int(x.replace(",", "")) for x in m.groups()[1:]] for m in _SUMMARY_ROW.finditer(output)}
    assert set(rows) == {"tables: contacts", "tables: vehicles", "opt-outs", "email events"}, output
    read, written, _skipped, failed = rows["tables: contacts"][:4]
    assert read >= 80
    assert written > 0
    assert failed == 0
    assert rows["email events"][1] > 0  # activities written back to Dynamics
    assert rows["opt-outs"][1] > 0  # opt-outs propagated one way or the other
    assert "Dashboard:" in output


_SUMMARY_ROW = re.compile(
    r"│ (tables: \w+|opt-outs|email events)\s*│\s*([\d,]+) │\s*([\d,]+) │\s*([\d,]+) │\s*([\d,]+) │"
)
