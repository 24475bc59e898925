"""MicroBatcher: concurrent calls share model calls, failures reach every caller."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.batching import MicroBatcher


async def test_concurrent_calls_are_batched_and_answered_in_order() -> None:
    sizes: list[int] = []

    def double(items: list[int]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.02)  # a model call takes a while: requests pile up meanwhile
        return [2 * x for x in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(double, max_size=8, max_wait=0.005)
    try:
        results = await asyncio.gather(*(batcher.submit(i) for i in range(40)))
    finally:
        await batcher.close()
    assert results == [2 * i for i in range(40)]
    assert sum(sizes) == 40
    assert max(sizes) == 8
    assert len(sizes) <= 8  # 40 calls in a handful of model calls, not 40
    assert batcher.items == 40 and batcher.batches == len(sizes)


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_still_runs() -> None:
    calls = 0

    def flaky(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if "bad" in items:
            raise ValueError("model exploded")
        return [x.upper() for x in items]

    batcher: MicroBatcher[str, str] = MicroBatcher(flaky, max_size=4, max_wait=0.01)
    try:
        failed = await asyncio.gather(
            batcher.submit("bad"), batcher.submit("x"), return_exceptions=True
        )
        assert all(isinstance(r, ValueError) for r in failed)
        assert await batcher.submit("ok") == "OK"
    finally:
        await batcher.close()


async def test_wrong_number_of_results_is_an_error() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: [1], max_size=4, max_wait=0.01)
    try:
        with pytest.raises(RuntimeError, match="returned 1 results for 2 inputs"):
            await asyncio.gather(batcher.submit(1), batcher.submit(2))
    finally:
        await batcher.close()


async def test_a_lone_request_does_not_wait_for_company_but_a_busy_batcher_does() -> None:
    sizes: list[int] = []

    def record(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    # A minute's wait would fail the wait_for below: a lone request must start at once.
    batcher: MicroBatcher[int, int] = MicroBatcher(record, max_size=2, max_wait=60.0)
    try:
        assert await asyncio.wait_for(batcher.submit(1), 5) == 1
        assert await asyncio.wait_for(asyncio.gather(batcher.submit(2), batcher.submit(3)), 5)
        # The last batch had company: the next one waits for a second item, sent 50 ms later.
        first = asyncio.ensure_future(batcher.submit(4))
        await asyncio.sleep(0.05)
        assert await asyncio.wait_for(asyncio.gather(first, batcher.submit(5)), 5) == [4, 5]
    finally:
        await batcher.close()
    assert sizes == [1, 2, 2]
