"""Concurrency: cancellation, parallel calls, a free event loop, per-Spirit serialisation,
and where calls run (inline on the loop thread, or on worker threads)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from conftest import COUNTER, LOOPS, burn_expected

from vudo_runtime import (
    HostFunction,
    Loa,
    LoaRegistry,
    Seance,
    Spirit,
    SpiritTrap,
    VudoError,
    WasmSignature,
)
from vudo_runtime.spirit import THREAD_THRESHOLD

#: A mutable global to observe whether a call ran at all, and the LCG of loops.wasm `burn`.
BUMP_WAT = b"""
(module
  (global $n (mut i64) (i64.const 0))
  (func (export "bump") (result i64)
    (global.set $n (i64.add (global.get $n) (i64.const 1)))
    (global.get $n))
  (func (export "get") (result i64) (global.get $n))
  (func (export "burn") (param $n i64) (result i64)
    (local $i i64) (local $x i64)
    (local.set $x (local.get $n))
    (block $done
      (loop $next
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (local.set $x
          (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005))
                   (i64.const 1442695040888963407)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $x)))
"""

#: `work(n)` loops n times, then calls the host's `probe_thread`, which records the thread.
PROBE_WAT = b"""
(module
  (import "loa" "probe_thread" (func $probe))
  (func (export "work") (param $n i64) (result i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (call $probe)
    (local.get $i)))
"""

#: Loop iterations that take well over THREAD_THRESHOLD on any machine.
LONG_WORK = 50_000_000


def probe_registry(seen: list[int]) -> LoaRegistry:
    """A registry whose `probe` Loa records the thread each call arrives on."""

    def provides(ctx: object) -> dict[str, HostFunction]:
        def probe_thread() -> None:
            seen.append(threading.get_ident())

        return {"probe_thread": HostFunction(probe_thread, signature=WasmSignature((), ()))}

    return LoaRegistry([Loa(name="probe", capabilities=("probe_thread",), provides=provides)])


async def until_busy(spirit: Spirit) -> None:
    """Wait until a call holds ``spirit``'s Store (a worker thread is inside it)."""
    async with asyncio.timeout(5):
        while spirit._lock.acquire(blocking=False):
            spirit._lock.release()
            await asyncio.sleep(0.001)


T = TypeVar("T")


async def beats_during(work: Awaitable[T]) -> tuple[T, int]:
    """Await ``work`` while a 1 ms heartbeat runs on the loop: its result, and the beats meanwhile.

    A loop blocked for the whole of ``work`` beats once at most.
    """
    beats = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal beats
        while not done.is_set():
            beats += 1
            await asyncio.sleep(0.001)

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    start = beats
    try:
        result = await work
    finally:
        done.set()
        await beating
    return result, beats - start


async def test_cancelled_waiting_invoke_never_runs() -> None:
    async with Seance() as s:
        spirit = await s.summon("w", BUMP_WAT, mode="thread")
        long_call = asyncio.create_task(s.invoke("w", "burn", 300_000_000))
        await until_busy(spirit)
        waiting = asyncio.create_task(s.invoke("w", "bump"))
        await asyncio.sleep(0.02)  # let it reach the worker thread, where it waits
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await long_call == burn_expected(300_000_000)
        # the Séance is usable, and the cancelled call did not run later behind our back
        assert await s.invoke("w", "get") == 0
        assert await s.invoke("w", "bump") == 1
        assert "w" not in s.failures


async def test_cancelled_running_invoke_leaves_the_spirit_usable() -> None:
    async with Seance() as s:
        spirit = await s.summon("w", BUMP_WAT, mode="thread")
        running = asyncio.create_task(s.invoke("w", "burn", 200_000_000))
        await until_busy(spirit)
        running.cancel()  # the wasm call itself finishes on its thread
        with pytest.raises(asyncio.CancelledError):
            await running
        assert await s.invoke("w", "bump") == 1  # waits for the Store, then runs
        assert await s.invoke("w", "burn", 1000) == burn_expected(1000)


async def test_two_cpu_bound_invokes_in_parallel() -> None:
    n = 50_000_000
    async with Seance() as s:
        await s.summon("a", LOOPS, mode="thread")
        await s.summon("b", LOOPS, mode="thread")
        a, b = await asyncio.gather(s.invoke("a", "burn", n), s.invoke("b", "burn", n + 1))
        assert a == burn_expected(n)
        assert b == burn_expected(n + 1)


async def test_event_loop_keeps_beating_during_a_long_call() -> None:
    async with Seance() as s:
        await s.summon("loops", LOOPS, mode="thread")
        result, during = await beats_during(s.invoke("loops", "burn", 200_000_000))
    assert result == burn_expected(200_000_000)
    assert during > 10  # a blocked loop would have beaten once at most


async def test_concurrent_invokes_on_one_spirit_are_serialised() -> None:
    async with Seance() as s:
        await s.summon("counter", COUNTER)
        ptr = await s.invoke("counter", "new_Counter", 0)
        modes = ("thread", None, "inline")
        calls = [
            s.invoke("counter", "Counter.increment", ptr, mode=modes[i % 3])  # type: ignore[arg-type]
            for i in range(300)
        ]
        results = await asyncio.gather(*calls)
        assert sorted(results) == list(range(1, 301))  # every increment saw its own value
        assert await s.invoke("counter", "Counter.get_value", ptr) == 300


async def test_concurrent_invokes_across_spirits() -> None:
    async with Seance() as s:
        names = [f"c{i}" for i in range(4)]
        for name in names:
            await s.summon(name, COUNTER, mode="thread")
        ptrs = {name: await s.invoke(name, "new_Counter", 0) for name in names}
        calls = [
            s.invoke(name, "Counter.increment", ptrs[name]) for _ in range(50) for name in names
        ]
        await asyncio.gather(*calls)
        for name in names:
            assert await s.invoke(name, "Counter.get_value", ptrs[name]) == 50


async def test_inline_mode_runs_on_the_loop_thread() -> None:
    seen: list[int] = []
    async with Seance(probe_registry(seen)) as s:
        await s.summon("p", PROBE_WAT, loas=["core", "probe"], mode="inline")
        assert await s.invoke("p", "work", 10) == 10
        assert await s.invoke("p", "work", LONG_WORK) == LONG_WORK  # even when long
    assert seen == [threading.get_ident()] * 2


async def test_thread_mode_runs_on_a_worker_thread() -> None:
    seen: list[int] = []
    async with Seance(probe_registry(seen)) as s:
        await s.summon("p", PROBE_WAT, loas=["core", "probe"], mode="thread")
        assert await s.invoke("p", "work", 10) == 10
        # a per-call mode overrides the Spirit's
        assert await s.invoke("p", "work", 10, mode="inline") == 10
    loop_thread = threading.get_ident()
    assert seen[0] != loop_thread
    assert seen[1] == loop_thread


async def test_auto_mode_moves_a_long_function_to_threads() -> None:
    seen: list[int] = []
    loop_thread = threading.get_ident()
    async with Seance(probe_registry(seen)) as s:
        spirit = await s.summon("p", PROBE_WAT, loas=["core", "probe"])  # mode="auto"
        assert await s.invoke("p", "work", 10) == 10
        assert seen[-1] != loop_thread  # unknown yet: the first call never blocks the loop
        assert not spirit._funcs["work"].slow  # measured short

        assert await s.invoke("p", "work", 10) == 10
        assert seen[-1] == loop_thread  # known short: inline

        assert await s.invoke("p", "work", LONG_WORK) == LONG_WORK
        assert seen[-1] == loop_thread  # not yet known to be long
        assert spirit._funcs["work"].slow  # ran longer than THREAD_THRESHOLD
        assert THREAD_THRESHOLD < 0.05

        assert await s.invoke("p", "work", LONG_WORK) == LONG_WORK
        assert seen[-1] != loop_thread  # now on a worker thread
        assert spirit._funcs["work"].slow


async def test_sync_and_async_callers_share_one_spirit() -> None:
    async with Seance() as s:
        spirit = await s.summon("counter", COUNTER, mode="thread")
        ptr = await s.invoke("counter", "new_Counter", 0)

        def sync_caller() -> None:
            for _ in range(100):
                spirit.call_sync("Counter.increment", ptr)

        threads = [threading.Thread(target=sync_caller) for _ in range(3)]
        for t in threads:
            t.start()
        await asyncio.gather(*(s.invoke("counter", "Counter.increment", ptr) for _ in range(100)))
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        assert await s.invoke("counter", "Counter.get_value", ptr) == 400


async def test_release_of_a_busy_spirit_does_not_block_the_loop() -> None:
    async with Seance() as s:
        spirit = await s.summon("loops", LOOPS, mode="thread")
        running = asyncio.create_task(s.invoke("loops", "burn", 200_000_000))
        await until_busy(spirit)
        # release waits for the call to leave the Store, off the loop
        _, during = await beats_during(s.release("loops"))
        assert spirit.closed and "loops" not in s
        assert await running == burn_expected(200_000_000)  # the running call completes
    assert during > 10


async def test_a_call_queued_behind_close_does_not_run() -> None:
    async with Seance() as s:
        spirit = await s.summon("w", BUMP_WAT, mode="thread")
        assert await s.invoke("w", "bump") == 1
        with spirit._lock:  # stands for a long call holding the Store
            queued = asyncio.create_task(spirit.call("bump"))
            await asyncio.sleep(0.02)  # it reaches a worker thread and waits there
            assert not queued.done()
            spirit.close()
        with pytest.raises(VudoError, match="closed"):
            await queued


async def test_concurrent_traps_restart_once() -> None:
    async with Seance() as s:
        first = await s.summon("counter", COUNTER, restart="on-trap", mode="thread")
        restarts = 0
        restart = s.restart

        async def counting(name: str) -> Spirit:
            nonlocal restarts
            restarts += 1
            return await restart(name)

        s.restart = counting  # type: ignore[method-assign]
        outcomes = await asyncio.gather(
            *(s.invoke("counter", "Counter.increment", -16) for _ in range(4)),
            return_exceptions=True,
        )
        assert all(isinstance(o, SpiritTrap) for o in outcomes)
        assert restarts == 1
        assert first.closed and not s["counter"].closed
        ptr = await s.invoke("counter", "new_Counter", 0)
        assert await s.invoke("counter", "Counter.increment", ptr) == 1
