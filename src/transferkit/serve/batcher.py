"""Micro-batching: concurrent requests share one model call.

Each request enqueues its items with a future. One worker task takes the first waiting request,
then keeps collecting requests until the batch holds `max_batch` items or `window_ms` has passed
since it started (whatever is already queued joins at once), runs the model on all items in a
dedicated thread — so the event loop keeps accepting requests while the model works — and hands
each request its slice of the results. A request is never split across batches.

While one batch runs, the next requests queue up; under load the next batch is therefore full
without waiting, and one forward pass over B items costs much less than B passes over one.
With `enabled=False` every request is its own model call (the benchmark's baseline).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

Runner = Callable[[list[Any]], tuple[Sequence[Any], Any]]  # items -> (one result per item, context)


@dataclass
class BatchStats:
    """Counters since start: requests answered, model calls, items sent to the model, largest call."""

    requests: int = 0
    items: int = 0
    batches: int = 0
    largest_batch: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collects concurrent requests into batches for `runner`, which runs in a worker thread.

    `runner(items)` returns one result per item and a context shared by the whole batch (here:
    which model version answered); `submit` returns the caller's results and that context.
    """

    def __init__(self, runner: Runner, max_batch: int = 32, window_ms: float = 5.0, enabled: bool = True) -> None:
        self.runner = runner
        self.max_batch = max_batch
        self.window = window_ms / 1000.0
        self.enabled = enabled
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transferkit-model")
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="transferkit-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, items: list[Any]) -> tuple[list[Any], Any]:
        """Queue `items` for the next batch; wait for their results and the batch's context."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(list(items), future))
        return await future

    async def _work(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            if self.enabled:
                await self._collect(jobs)
            jobs = [job for job in jobs if not job.future.done()]  # callers that went away
            if jobs:
                await self._run(jobs)

    async def _collect(self, jobs: list[_Job]) -> None:
        """Add queued jobs until max_batch items or the window closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window
        size = len(jobs[0].items)
        while size < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    return
            jobs.append(job)
            size += len(job.items)

    async def _run(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            results, context = await self._call(items)
        except Exception as exc:  # noqa: BLE001 - handed to the callers, never lost
            if len(jobs) > 1:
                # One request's input must not fail its neighbours: retry each on its own.
                for job in jobs:
                    await self._run([job])
                return
            _resolve(jobs[0].future, exception=exc)
            return
        self.stats.requests += len(jobs)
        start = 0
        for job in jobs:
            _resolve(job.future, result=(list(results[start:start + len(job.items)]), context))
            start += len(job.items)

    async def _call(self, items: list[Any]) -> tuple[Sequence[Any], Any]:
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.largest_batch = max(self.stats.largest_batch, len(items))
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.runner, items)


def _resolve(future: asyncio.Future, result: Any = None, exception: BaseException | None = None) -> None:
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
