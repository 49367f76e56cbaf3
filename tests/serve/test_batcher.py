"""The micro-batcher on its own, with a stand-in model: batching, ordering, limits, isolation."""

from __future__ import annotations

import asyncio
import threading
import time

from transferkit.serve.batcher import MicroBatcher


class Recorder:
    """A stand-in model: remembers each call, answers item -> item * 10, fails on 'bad'."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[list] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, items: list) -> tuple[list, str]:
        self.calls.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if "bad" in items:
            raise ValueError("bad item")
        return [item * 10 for item in items], f"call{len(self.calls)}"


async def _run(batcher: MicroBatcher, requests: list[list]) -> list:
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(items) for items in requests), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_model_calls_and_get_their_own_results() -> None:
    model = Recorder()
    requests = [[i, i + 100] for i in range(10)]
    answers = asyncio.run(_run(MicroBatcher(model, max_batch=64, window_ms=50), requests))
    assert [results for results, _ in answers] == [[i * 10, (i + 100) * 10] for i in range(10)]
    assert len(model.calls) == 1 and len(model.calls[0]) == 20
    assert {context for _, context in answers} == {"call1"}
    assert model.threads and "MainThread" not in model.threads  # the event loop never runs the model


def test_a_batch_stops_growing_at_max_batch() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch=4, window_ms=50)
    answers = asyncio.run(_run(batcher, [[i] for i in range(10)]))
    assert [results for results, _ in answers] == [[i * 10] for i in range(10)]
    assert [len(call) for call in model.calls] == [4, 4, 2]
    assert batcher.stats.as_dict() == {"requests": 10, "items": 10, "batches": 3, "largest_batch": 4}


def test_without_batching_every_request_is_its_own_call() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch=64, window_ms=50, enabled=False)
    asyncio.run(_run(batcher, [[i] for i in range(6)]))
    assert model.calls == [[i] for i in range(6)]
    assert batcher.stats.batches == 6


def test_a_failing_request_does_not_fail_its_batch_neighbours() -> None:
    model = Recorder()
    answers = asyncio.run(_run(MicroBatcher(model, max_batch=64, window_ms=50), [[1], ["bad"], [3]]))
    assert answers[0][0] == [10] and answers[2][0] == [30]
    assert isinstance(answers[1], ValueError)


def test_a_lone_request_waits_at_most_the_window() -> None:
    async def one() -> float:
        batcher = MicroBatcher(Recorder(), max_batch=64, window_ms=100)
        batcher.start()
        started = time.perf_counter()
        await batcher.submit([1])
        elapsed = time.perf_counter() - started
        await batcher.stop()
        return elapsed

    assert 0.09 <= asyncio.run(one()) < 1.0


def test_requests_queued_while_the_model_runs_form_the_next_batch() -> None:
    async def scenario(model: Recorder) -> None:
        batcher = MicroBatcher(model, max_batch=64, window_ms=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.05)  # the first call is running (0.2 s)
        rest = [asyncio.ensure_future(batcher.submit([i])) for i in range(1, 6)]
        await asyncio.gather(first, *rest)
        await batcher.stop()

    model = Recorder(delay=0.2)
    asyncio.run(scenario(model))
    assert model.calls == [[0], [1, 2, 3, 4, 5]]


def test_stop_fails_requests_still_queued() -> None:
    async def scenario() -> object:
        batcher = MicroBatcher(Recorder())
        pending = asyncio.ensure_future(batcher.submit([1]))  # never started: stays queued
        await asyncio.sleep(0)
        await batcher.stop()
        return await asyncio.gather(pending, return_exceptions=True)

    (outcome,) = asyncio.run(scenario())
    assert isinstance(outcome, RuntimeError)
