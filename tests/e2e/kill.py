"""Kill harness, reusable by every flow: run the real CLI, SIGKILL it at seeded random moments, restart it.

Two kinds of kill point:

* ``write``: a reverse proxy in front of an emulator (Campaign over HTTP, or Dataverse over HTTPS, the proxy then
  terminating TLS with a certificate of its own CA) forwards the k-th write (POST/PATCH/PUT/DELETE), waits until
  the emulator has applied it and answered, SIGKILLs the sync process, and only then lets the response go: the
  write happened, the process never learned it. This is the moment idempotency must cover.
* ``time``: the process is killed a random delay after it first talks to the proxied service (mid-read,
  mid-write or mid-commit, wherever it happens to be).

Between kills the emulator's own ``drop_after_rate`` may lose responses of applied requests too. After the kill
points, a quiet pass (no proxy kills, no faults) must finish cleanly; the caller then checks both sides with the
oracle. Everything random comes from one seed, printed with every failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import uvicorn

from crmbridge.emulators.dynamics.tls import TlsFiles
from crmbridge.emulators.launch import free_port

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive"})


@dataclass
class KillPlan:
    """When to kill the next run: after the k-th write was applied, or some seconds after its first request."""

    kind: str  # "write" | "time"
    after_writes: int = 0
    after_seconds: float = 0.0

    def __str__(self) -> str:
        if self.kind == "write":
            return f"kill after write #{self.after_writes} was applied"
        return f"kill {self.after_seconds:.2f} s after the first request"


class _Victim:
    """The process the proxy kills, and the event that says it is dead (responses wait for it)."""

    def __init__(self, pid: int, plan: KillPlan | None) -> None:
        self.pid = pid
        self.plan = plan
        self.writes = 0
        self.timer_started = False
        self.killed = threading.Event()
        self.reaped = threading.Event()

    def kill(self) -> None:
        if not self.killed.is_set():
            self.killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


RequestHook = Callable[[str, str, str], None]
"""Called with (method, path, query) of a request in a worker thread; may change the upstream meanwhile."""


def _is_token_request(path: str) -> bool:
    """Adobe IMS and Entra ID token endpoints: POSTs, but not writes to the data."""
    return path.startswith("/ims") or "/oauth2/" in path


class KillProxy:
    """A reverse proxy (one thread, its own event loop) that kills its victim at the planned moment.

    ``tls`` serves HTTPS with those files (clients must trust their CA as well as the upstream's); ``upstream_ca``
    is the CA the proxy trusts for an HTTPS upstream (the Dataverse emulator's).
    ``before_forward`` and ``before_reply`` hooks run for every request, before it reaches the upstream and after
    the upstream answered but before the client gets that answer: a test changes the upstream at those moments.
    """

    def __init__(self, upstream: str, *, tls: TlsFiles | None = None, upstream_ca: Path | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.victim: _Victim | None = None
        self.writes_seen = 0
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(upstream_ca)) if upstream_ca else True
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._app,
                host="127.0.0.1",
                port=self.port,
                log_level="critical",
                lifespan="on",
                interface="asgi3",
                ssl_certfile=str(tls.cert_path) if tls else None,
                ssl_keyfile=str(tls.key_path) if tls else None,
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="kill-proxy", daemon=True)
        self._client: httpx.AsyncClient | None = None
        self.before_forward: RequestHook | None = None
        self.before_reply: RequestHook | None = None

    def __enter__(self) -> KillProxy:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the kill proxy did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self._client is not None
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client died mid-request: forwarding the part we got would invent a request
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        victim = self.victim
        method = str(scope["method"])
        path = str(scope["path"])
        if victim is not None and victim.plan is not None and victim.plan.kind == "time" and not victim.timer_started:
            victim.timer_started = True
            asyncio.get_running_loop().call_later(victim.plan.after_seconds, victim.kill)
        query = scope.get("query_string", b"").decode()
        url = self.upstream + scope.get("raw_path", path.encode()).decode() + (f"?{query}" if query else "")
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in _HOP_HEADERS]
        if self.before_forward is not None:
            await asyncio.to_thread(self.before_forward, method, path, query)
        try:
            upstream = await self._client.request(method, url, headers=headers, content=body)
        except httpx.TransportError:
            # The emulator dropped the connection (fault injection): drop ours the same way, mid-response.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
            raise
        if method in WRITE_METHODS and not _is_token_request(path):
            self.writes_seen += 1
            if victim is not None and victim.plan is not None and victim.plan.kind == "write":
                victim.writes += 1
                if victim.writes == victim.plan.after_writes:
                    # Applied upstream; the process dies before it can read the answer.
                    victim.kill()
                    await asyncio.to_thread(victim.reaped.wait, 30)
        if self.before_reply is not None:
            await asyncio.to_thread(self.before_reply, method, path, query)
        out_headers = [(k.encode(), v.encode()) for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS]
        out_headers.append((b"content-length", str(len(upstream.content)).encode()))
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": out_headers})
        await send({"type": "http.response.body", "body": upstream.content})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(timeout=120.0, trust_env=False, verify=self._verify)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


@dataclass
class RunRecord:
    plan: KillPlan | None
    returncode: int
    seconds: float
    output_tail: str = ""


@dataclass
class KillReport:
    seed: int
    kills: int = 0
    runs: list[RunRecord] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"kill harness seed={self.seed} (rerun with CRMBRIDGE_KILL_SEED={self.seed}); {self.kills} kills"]
        for index, run in enumerate(self.runs):
            lines.append(f"  run {index}: {run.plan or 'quiet'} -> exit {run.returncode} in {run.seconds:.1f} s")
        return "\n".join(lines)


def _plan(rnd: random.Random, max_writes: int, max_seconds: float) -> KillPlan:
    if rnd.random() < 0.6:
        return KillPlan("write", after_writes=rnd.randint(1, max_writes))
    return KillPlan("time", after_seconds=rnd.uniform(0.0, max_seconds))


class Launcher(Protocol):
    """Starts one CLI run (``crmbridge ARGS``) writing its output to ``log``; then waits for its exit code."""

    def start(self, args: list[str], log: Path) -> int: ...

    def wait(self, timeout: float) -> int: ...


class SubprocessLauncher:
    """``python -m crmbridge ARGS`` as a plain subprocess: what a user runs."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, args: list[str], log: Path) -> int:
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "crmbridge", *args], stdout=output, stderr=subprocess.STDOUT, env=self.env
            )
        return self._process.pid

    def wait(self, timeout: float) -> int:
        assert self._process is not None
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError from None

    def close(self) -> None:
        pass


class ForkServer:
    """Runs the CLI in processes forked from ``tests/e2e/forkserver.py``, which imported crmbridge once."""

    def __init__(self, env: dict[str, str]) -> None:
        script = Path(__file__).with_name("forkserver.py")
        self._server = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="forkserver-reader", daemon=True)
        self._reader.start()
        self._pid = 0

    def _read(self) -> None:
        assert self._server.stdout is not None
        for line in self._server.stdout:
            self._lines.put(line)

    def _answer(self, timeout: float) -> dict[str, Any]:
        try:
            return dict(json.loads(self._lines.get(timeout=timeout)))
        except queue.Empty:
            raise TimeoutError from None

    def start(self, args: list[str], log: Path, *, err: Path | None = None) -> int:
        """Fork a run of ``crmbridge ARGS``; its stdout (and stderr, unless ``err`` names a file for it) to ``log``."""
        assert self._server.stdin is not None
        request: dict[str, Any] = {"argv": args, "log": str(log)} | ({"err": str(err)} if err is not None else {})
        self._server.stdin.write(json.dumps(request) + "\n")
        self._server.stdin.flush()
        self._pid = int(self._answer(60.0)["pid"])
        return self._pid

    def wait(self, timeout: float) -> int:
        try:
            return int(self._answer(timeout)["exit"])
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            self._answer(30.0)
            raise

    def close(self) -> None:
        if self._server.stdin is not None:
            self._server.stdin.close()
        try:
            self._server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
        if self._server.stdout is not None:
            self._server.stdout.close()
        self._reader.join(timeout=5)


class KillHarness:
    """Runs ``crmbridge ARGS`` again and again, killing it at seeded random points, then a quiet pass."""

    def __init__(
        self,
        args: list[str],
        proxy: KillProxy,
        launcher: Launcher,
        *,
        seed: int,
        workdir: Path,
        timeout: float = 120.0,
        max_writes: int = 40,
        max_seconds: float = 3.0,
    ) -> None:
        self.args = args
        self.proxy = proxy
        self.launcher = launcher
        self.rnd = random.Random(seed)
        self.report = KillReport(seed)
        self.workdir = workdir
        self.timeout = timeout
        self.max_writes = max_writes
        self.max_seconds = max_seconds

    def run(self, plan: KillPlan | None) -> RunRecord:
        log = self.workdir / f"run-{len(self.report.runs)}.log"
        started = time.monotonic()
        victim = _Victim(0, plan)
        self.proxy.victim = victim
        try:
            victim.pid = self.launcher.start(self.args, log)
            if victim.killed.is_set():  # a timer fired before the pid was known (cannot happen: no request yet)
                victim.killed.clear()
                victim.kill()
            returncode = self.launcher.wait(self.timeout)
        except TimeoutError:
            raise AssertionError(f"{self.report.describe()}\nrun {log} hung past {self.timeout} s") from None
        finally:
            victim.reaped.set()
            self.proxy.victim = None
        tail = log.read_text(errors="replace")[-3000:]
        record = RunRecord(plan, returncode, time.monotonic() - started, tail)
        self.report.runs.append(record)
        return record

    def kill_points(
        self, count: int, *, more_work: Callable[[random.Random], None], after_kills_too: bool = False
    ) -> KillReport:
        """Until ``count`` runs died by SIGKILL; a run that finished first gets ``more_work`` before the next
        (``after_kills_too``: every run does, so changes also land while the process is down mid-work)."""
        while self.report.kills < count:
            record = self.run(_plan(self.rnd, self.max_writes, self.max_seconds))
            if record.returncode == -signal.SIGKILL:
                self.report.kills += 1
                if after_kills_too:
                    more_work(self.rnd)
            elif record.returncode == 0:
                more_work(self.rnd)
            else:
                raise AssertionError(f"{self.report.describe()}\nunexpected exit:\n{record.output_tail}")
        return self.report

    def quiet_pass(self) -> RunRecord:
        record = self.run(None)
        if record.returncode != 0:
            raise AssertionError(f"{self.report.describe()}\nthe quiet pass failed:\n{record.output_tail}")
        return record
