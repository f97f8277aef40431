"""Overlapped batches with ordered commits: the shape the events flow needs to keep Dataverse busy.

Up to ``depth`` batches are written at once (while the next source page is read); each batch is committed only
after its own writes were acknowledged *and* every earlier batch was committed, strictly in submission order. So a
checkpoint never gets ahead of an unacknowledged batch: a crash replays at most the batches in flight, never skips
one. The first failure cancels the batches still in flight (they commit nothing) and is raised as itself, after the
batches that finished before it in order were committed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["OrderedPipeline"]

Result = TypeVar("Result")


@dataclass(slots=True)
class _Slot(Generic[Result]):
    task: asyncio.Task[Result]
    commit: Callable[[Result], Awaitable[None]]


class OrderedPipeline:
    """``async with OrderedPipeline(depth) as pipeline: await pipeline.submit(write, commit)``.

    ``submit`` returns as soon as the batch is started, unless ``depth`` batches are already in flight: then it
    first waits for the oldest one and commits it. (A ``write`` coroutine not yet started is simply closed if the
    pass stops first.) Leaving the block normally commits whatever is left, in order.
    """

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self._slots: deque[_Slot[Any]] = deque()
        self.peak_in_flight = 0

    @property
    def in_flight(self) -> int:
        return len(self._slots)

    async def __aenter__(self) -> OrderedPipeline:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is None:
            await self.finish()
        else:
            await self._cancel_all()

    async def finish(self) -> None:
        """Wait for every batch in flight and commit them all, in order."""
        while self._slots:
            await self._commit_oldest()

    async def submit(self, write: Awaitable[Result], commit: Callable[[Result], Awaitable[None]]) -> None:
        """Start ``write`` once fewer than ``depth`` batches are in flight; ``commit(result)`` runs later, after
        every earlier batch's commit."""
        await self._commit_finished()
        while len(self._slots) >= self.depth:
            await self._commit_oldest()
        self._slots.append(_Slot(asyncio.ensure_future(write), commit))
        self.peak_in_flight = max(self.peak_in_flight, len(self._slots))

    async def _commit_finished(self) -> None:
        """Commit the oldest batches that are already done, without waiting for anything else."""
        while self._slots and self._slots[0].task.done():
            await self._commit_oldest()

    async def _commit_oldest(self) -> None:
        head = self._slots[0]
        while not head.task.done():
            failed = next((slot.task for slot in self._slots if _failed(slot.task)), None)
            if failed is not None:  # a later batch failed: stop without waiting for the oldest
                await self._commit_finished()  # the batches before the failed one that did finish
                await self._cancel_all()
                failed.result()  # raises the failure as itself
            # Wake when any batch still running finishes (waiting on a finished one would return at once, forever).
            running = [slot.task for slot in self._slots if not slot.task.done()]
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        self._slots.popleft()
        await head.commit(head.task.result())  # a failed write raises here, before anything of it is committed

    async def _cancel_all(self) -> None:
        tasks = [slot.task for slot in self._slots]
        self._slots.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None
