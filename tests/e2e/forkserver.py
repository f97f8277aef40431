"""A fork server for the crmbridge CLI: imports crmbridge once, then forks a fresh process per run.

Importing crmbridge costs seconds of wall time on a loaded machine, and the kill harness starts the CLI dozens
of times. Each forked child is still a separate OS process running ``crmbridge.cli.main`` with the given
arguments (nothing is shared with its siblings after the fork: no event loop, connection or database handle
exists before it), so SIGKILL hits it exactly as it would hit ``python -m crmbridge``.

Run as ``python tests/e2e/forkserver.py``; protocol on stdin/stdout, one JSON object per line:
``{"argv": [...], "log": PATH}`` (optionally ``"err": PATH`` for stderr apart) → ``{"pid": N}`` then, when the
child ends, ``{"exit": CODE}`` (``-9`` when it was SIGKILLed).
"""

from __future__ import annotations

import json
import os
import sys


def _child(argv: list[str], log: str, err: str | None) -> None:
    import crmbridge.cli

    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd if err is None else os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    sys.argv = ["crmbridge", *argv]
    code = 0
    try:
        crmbridge.cli.main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException as error:
        import traceback

        traceback.print_exception(error)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def main() -> None:
    import crmbridge.cli
    import crmbridge.engine.commands

    del crmbridge
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            err = request.get("err")
            _child(list(request["argv"]), str(request["log"]), None if err is None else str(err))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
