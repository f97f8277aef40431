"""Per-record outcomes of bulk and ``$batch`` writes, the split-until-alone rule for all-or-nothing calls, and the
bounded concurrent runner both writers use for their chunks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio

from crmbridge.exceptions import RecordError

__all__ = ["WriteResult", "run_chunks", "split_until_alone"]

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What happened to the input at ``index``: written (with its row id when the service returned one) or refused."""

    index: int
    id: str | None = None
    error: RecordError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


AllOrNothing = Callable[[Sequence[tuple[int, Item]]], Awaitable[list[WriteResult]]]


async def split_until_alone(items: Sequence[tuple[int, Item]], call: AllOrNothing[Item]) -> list[WriteResult]:
    """Run an all-or-nothing ``call``; when it refuses the group, halve it until each bad record stands alone.

    A group of n with one bad record costs about 2·log2(n) calls; every good record is written exactly once.
    Errors other than :class:`RecordError` (throttling exhausted, config, auth) propagate: they are not the
    records' fault.
    """
    if not items:
        return []
    try:
        return await call(items)
    except RecordError as error:
        if len(items) == 1:
            return [WriteResult(index=items[0][0], error=error)]
    middle = len(items) // 2
    return await split_until_alone(items[:middle], call) + await split_until_alone(items[middle:], call)


Chunk = TypeVar("Chunk")


async def run_chunks(chunks: Sequence[Chunk], run: Callable[[Chunk], Awaitable[None]], parallel: int) -> None:
    """Run ``run`` on every chunk, at most ``parallel`` at a time; the first failure cancels the rest.

    The failure is raised as itself, not wrapped in an ExceptionGroup, so callers catch ConfigError,
    RateLimited, ... as they would from a single call.
    """
    limiter = anyio.CapacityLimiter(parallel)

    async def bounded(chunk: Chunk) -> None:
        async with limiter:
            await run(chunk)

    try:
        async with anyio.create_task_group() as group:
            for chunk in chunks:
                group.start_soon(bounded, chunk)
    except BaseExceptionGroup as failures:
        raise _first_failure(failures) from failures


def _first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_failure(first) if isinstance(first, BaseExceptionGroup) else first
