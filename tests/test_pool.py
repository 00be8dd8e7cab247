"""InstancePool: fresh instances, backpressure, statistics, and load_spirit drawing from it."""

from __future__ import annotations

import asyncio

import pytest
from conftest import CALCULATOR, COUNTER

from vudo_runtime import InstancePool, PoolStats, PoolTimeout, Spirit, VudoError, load_spirit
from vudo_runtime.pool import shared_pool


async def until(predicate: object, limit: float = 5.0) -> None:
    """Yield to the loop until ``predicate()`` holds (background refills run on threads)."""
    async with asyncio.timeout(limit):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.001)


async def used_counter(spirit: Spirit, times: int) -> int:
    """Make a Counter on ``spirit`` and increment it ``times``; returns its pointer."""
    ptr = await spirit.call("new_Counter", 0)
    for _ in range(times):
        await spirit.call("Counter.increment", ptr)
    assert await spirit.call("Counter.get_value", ptr) == times
    return int(ptr)


async def test_acquire_yields_distinct_fresh_instances() -> None:
    async with InstancePool(COUNTER, size=2) as pool:
        async with pool.acquire() as a, pool.acquire() as b:
            assert a is not b
            ptr = await used_counter(a, 5)
            assert await b.call("Counter.get_value", ptr) == 0  # not shared with a
            assert pool.stats().in_use == 2
        assert a.closed and b.closed  # discarded, never reused
        for _ in range(5):
            async with pool.acquire() as spirit:
                assert spirit is not a and spirit is not b
                # a used instance's state is never seen again: memory and heap are new
                assert await spirit.call("Counter.get_value", ptr) == 0
                assert await spirit.call("new_Counter", 0) == ptr
                await used_counter(spirit, 3)


async def test_backpressure_waits_for_a_release() -> None:
    async with InstancePool(COUNTER, size=1) as pool:
        order: list[str] = []
        holding = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with pool.acquire():
                order.append("first acquired")
                holding.set()
                await release.wait()
                order.append("first releases")

        async def second() -> None:
            await holding.wait()
            order.append("second waits")
            async with pool.acquire():
                order.append("second acquired")

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await holding.wait()
        for _ in range(20):  # the second acquire gets every chance to (wrongly) go through
            await asyncio.sleep(0)
        assert order == ["first acquired", "second waits"]
        assert pool.stats().in_use == 1
        release.set()
        await asyncio.gather(*tasks)
        assert order == ["first acquired", "second waits", "first releases", "second acquired"]
        assert pool.stats().waited == 1
        assert pool.stats().in_use == 0


async def test_acquire_timeout_raises_pool_timeout() -> None:
    async with InstancePool(COUNTER, size=1) as pool:
        async with pool.acquire():
            async with asyncio.timeout(1):  # the bound: it must give up well within 1 s
                with pytest.raises(PoolTimeout, match="size=") as info:
                    async with pool.acquire(timeout=0.05):
                        pytest.fail("acquired an instance of an exhausted pool")
            assert isinstance(info.value, TimeoutError)
        async with pool.acquire(timeout=0.05) as spirit:  # free again
            assert await spirit.call("add_numbers", 1, 2) == 3


async def test_acquire_timeout_default_from_the_pool() -> None:
    async with InstancePool(COUNTER, size=1, acquire_timeout=0.05) as pool, pool.acquire():
        with pytest.raises(PoolTimeout):
            await pool.invoke("add_numbers", 1, 2)


async def test_stats() -> None:
    async with InstancePool(COUNTER, size=3, warm=2) as pool:
        stats = pool.stats()
        assert isinstance(stats, PoolStats)
        assert (stats.size, stats.created, stats.in_use, stats.idle, stats.waited) == (
            3,
            2,
            0,
            2,
            0,
        )
        assert stats.allocator in ("pooling", "on-demand")
        async with pool.acquire():
            assert pool.stats().in_use == 1
            await until(lambda: pool.stats().idle == 2)  # refilled off the event loop
            assert pool.stats().created == 3
        assert pool.stats().in_use == 0
        assert "InstancePool" in repr(pool)


async def test_invoke_runs_on_a_fresh_instance() -> None:
    async with InstancePool(COUNTER, size=2) as pool:
        assert await pool.invoke("add_numbers", 40, 2) == 42
        first = await pool.invoke("new_Counter", 7)
        # each invoke sees a new heap: the same first pointer every time
        assert [await pool.invoke("new_Counter", 7) for _ in range(3)] == [first] * 3
        results = await asyncio.gather(*(pool.invoke("add_numbers", i, i) for i in range(10)))
        assert results == [2 * i for i in range(10)]
        assert pool.stats().in_use == 0


async def test_load_spirit_draws_from_the_open_pool() -> None:
    async with InstancePool(COUNTER, size=2) as pool:
        assert shared_pool(pool.key) is pool
        before = pool.stats()
        assert before.idle == 2
        spirit = await load_spirit(COUNTER)
        # drawn from the pool: its one warm instance left is topped up again
        await until(lambda: pool.stats().created == before.created + 1)
        await until(lambda: pool.stats().idle == 2)  # and refilled
        assert pool.stats().in_use == 0  # handed over for good, not borrowed

        # it behaves like any Spirit
        assert spirit.name == "counter"
        ptr = await used_counter(spirit, 4)
        assert spirit.call_sync("Counter.increment", ptr) == 5
        assert spirit.list_functions() == [
            "new_Counter",
            "Counter.increment",
            "Counter.get_value",
            "Counter.add",
            "add_numbers",
        ]
        named = await load_spirit(COUNTER, name="second", timeout=1.0)
        assert named.name == "second" and named.timeout == 1.0
        assert await named.call("Counter.get_value", ptr) == 0  # its own fresh instance
        named.close()
    # the pool's close does not take away what it handed over
    assert not spirit.closed
    assert await spirit.call("Counter.get_value", ptr) == 5
    spirit.close()


async def test_after_close_load_spirit_loads_normally() -> None:
    async with InstancePool(COUNTER, size=1) as pool:
        pass
    created = pool.stats().created
    assert shared_pool(pool.key) is None
    assert pool.stats().idle == 0
    spirit = await load_spirit(COUNTER)
    try:
        assert pool.stats().created == created
        assert await spirit.call("add_numbers", 2, 3) == 5
    finally:
        spirit.close()
    with pytest.raises(VudoError, match="closed"):
        async with pool.acquire():
            pass


async def test_other_modules_do_not_draw() -> None:
    async with InstancePool(COUNTER, size=1) as pool:
        created = pool.stats().created
        spirit = await load_spirit(CALCULATOR)
        assert await spirit.call("add", 1, 2) == 3
        # a different grant (or fuel, or memory cap) is another kind of instance
        other = await load_spirit(COUNTER, fuel=1_000_000)
        assert await other.call("add_numbers", 1, 2) == 3
        assert pool.stats().created == created
        spirit.close()
        other.close()


def test_pool_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="size"):
        InstancePool(COUNTER, size=0)
