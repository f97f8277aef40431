"""The CLI's event loop: uvloop's where installed, with asyncio.run's contract (result out, loop closed)."""

from __future__ import annotations

import asyncio

import pytest

from crmbridge import event_loop


def test_run_returns_the_coroutines_result_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")

    async def loop_module() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(loop_module()).startswith("uvloop")


def test_run_propagates_the_coroutines_exception() -> None:
    async def fail() -> None:
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        event_loop.run(fail())
