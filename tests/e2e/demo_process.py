"""`crmbridge demo --keep-running` as a subprocess: wait for its summary, read it, stop it, check nothing is left.

The demo runs in its own session (process group), so whatever happens in a test, the ``finally`` can end the
demo and the emulators it started; a clean stop (SIGTERM, exit 0, emulators gone) is checked by the tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.harness import cli_env

SUMMARY_WAIT_S = 300.0  # a loaded machine is slow; the demo at size 80 takes ~10 s when idle
STOP_WAIT_S = 60.0  # the demo's grace period (10 s) plus stopping two emulators (up to 10 s each)
_TOKEN = re.compile(r"Dashboard token: (\S+)")
_ROW = re.compile(r"│ (tables: \w+|opt-outs|email events)\s*│" + r"\s*([\d,.]+) │" * 6)
COLUMNS = ("read", "written", "skipped", "waiting", "failed", "seconds")


def process_running(pid: int) -> bool:
    """True while the process exists and is not a zombie (an ended process its parent has not reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "?")
    return state != "Z"


@dataclass
class RunningDemo:
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    summary: dict[str, Any]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def token(self) -> str:
        match = _TOKEN.search(self.output())
        assert match is not None, "the demo printed no dashboard token\n" + self.output()
        return match.group(1)

    def printed_summary(self) -> dict[str, dict[str, float]]:
        """The rows of the printed Rich table, by flow."""
        rows = {}
        for match in _ROW.finditer(self.output()):
            values = [float(x.replace(",", "")) for x in match.groups()[1:]]
            rows[match.group(1)] = dict(zip(COLUMNS, values, strict=True))
        return rows

    def child_pids(self) -> list[int]:
        return [int(self.summary["emulators"][name]["pid"]) for name in ("dynamics", "campaign")]

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the demo (not its group: the demo must stop its emulators itself); its exit code."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=STOP_WAIT_S)


def _wait_for_summary(process: subprocess.Popen[bytes], summary_path: Path, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + SUMMARY_WAIT_S
    while not summary_path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the demo exited ({process.returncode}) before its summary\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no summary after {SUMMARY_WAIT_S:.0f} s\n{log_path.read_text()}")
        time.sleep(0.2)
    return dict(json.loads(summary_path.read_text()))


@contextmanager
def running_demo(workdir: Path, *, size: int) -> Iterator[RunningDemo]:
    """``crmbridge demo --size SIZE --keep-running`` until its summary is written; always ended afterwards."""
    workdir.parent.mkdir(parents=True, exist_ok=True)
    log_path = workdir.parent / f"{workdir.name}.log"
    command = [sys.executable, "-m", "crmbridge", "demo", "--size", str(size), "--workdir", str(workdir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--keep-running"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=cli_env() | {"COLUMNS": "160"},
            start_new_session=True,
        )
    try:
        summary = _wait_for_summary(process, workdir / "summary.json", log_path)
        yield RunningDemo(process, workdir, log_path, summary)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_WAIT_S)
        # Safety net for a failed test: the demo's own process group (the demo and the emulators it started).
        if process.poll() is None or _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_demo_to_its_end(workdir: Path, *, size: int) -> tuple[int, str, list[int]]:
    """``crmbridge demo --size SIZE`` (no --keep-running): exit code, output, and the emulator processes still
    running once it exited (seen before the safety net ends them: nothing of the demo outlives this call)."""
    command = [sys.executable, "-m", "crmbridge", "demo", "--size", str(size), "--workdir", str(workdir)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=cli_env() | {"COLUMNS": "160"},
        start_new_session=True,
    )
    left_running: list[int] = []
    try:
        output, _ = process.communicate(timeout=SUMMARY_WAIT_S)
        summary_path = workdir / "summary.json"
        if summary_path.exists():
            emulators = json.loads(summary_path.read_text())["emulators"].values()
            left_running = [int(e["pid"]) for e in emulators if process_running(int(e["pid"]))]
    finally:
        if process.poll() is None or _group_alive(process.pid):  # a failed test: end the demo and its emulators
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, output.decode(errors="replace"), left_running


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
