"""Control of running guests: cancellation, interrupt(), Ctrl-C, re-entry, small stacks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vudo_runtime import (
    HostContext,
    Loa,
    Seance,
    Spirit,
    SpiritInterrupted,
    SpiritTimeout,
    SpiritTrap,
    VudoError,
    load_spirit,
)

ROOT = Path(__file__).parent.parent
LOOPS = ROOT / "spirits" / "loops.wasm"

# spin: loops forever; add: a short call; deep: recursion n levels deep; back: calls the
# host, which may call back into the Spirit.
CONTROL_WAT = """(module
  (import "loa" "back" (func $back (param i32) (result i32)))
  (func (export "spin") (loop br 0))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func $deep (export "deep") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $deep (i32.sub (local.get 0) (i32.const 1)))))))
  (func (export "back") (param i32) (result i32) (call $back (local.get 0))))"""

PLAIN_WAT = """(module
  (func (export "spin") (loop br 0))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"""


def cpu_seconds(during: float) -> float:
    """Process CPU time used over the next ``during`` seconds (the caller sleeps)."""
    before = os.times()
    time.sleep(during)
    after = os.times()
    return (after.user - before.user) + (after.system - before.system)


async def async_cpu_seconds(during: float) -> float:
    before = os.times()
    await asyncio.sleep(during)
    after = os.times()
    return (after.user - before.user) + (after.system - before.system)


# ---- cancellation ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "auto", "inline"])
async def test_a_timeout_around_await_stops_the_guest(mode: str) -> None:
    spirit = await load_spirit(PLAIN_WAT.encode(), mode=mode)
    # auto mode learns "add" as short; spin is unknown (first call on a thread)
    assert await spirit.call("add", 1, 2) == 3
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await spirit.call("spin")
    assert time.monotonic() - started < 2.0  # the loop was not frozen behind the guest
    # the guest stopped: no core is burnt, and the Spirit answers the next call at once
    assert await async_cpu_seconds(0.5) < 0.25
    assert await asyncio.wait_for(spirit.call("add", 40, 2), 2) == 42
    spirit.close()


@pytest.mark.parametrize("mode", ["thread", "auto", "inline"])
async def test_wait_for_and_task_cancel_stop_the_guest(mode: str) -> None:
    spirit = await load_spirit(PLAIN_WAT.encode(), mode=mode)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(spirit.call("spin"), 0.2)
    task = asyncio.create_task(spirit.call("spin"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises((asyncio.CancelledError, TimeoutError)):
        await task  # inline: the loop runs the cancel only once the guard stops the call
    assert await async_cpu_seconds(0.5) < 0.25
    assert await asyncio.wait_for(spirit.call("add", 1, 1), 2) == 2
    await asyncio.wait_for(asyncio.to_thread(spirit.close), 2)  # close does not hang


async def test_an_auto_export_learned_short_that_spins_does_not_freeze_the_loop() -> None:
    spirit = await load_spirit(LOOPS)
    for _ in range(3):
        await spirit.call("sum_to", 10)  # learned short: runs inline on the loop thread
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await spirit.call("sum_to", 1 << 62)  # long enough to spin for ages
    assert time.monotonic() - started < 2.0
    assert await asyncio.wait_for(spirit.call("sum_to", 4), 2) == 10
    spirit.close()


async def test_seance_invoke_cancelled_and_dismissed() -> None:
    started = time.monotonic()
    async with Seance() as seance:
        await seance.summon("loops", LOOPS, mode="thread")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(seance.invoke("loops", "spin"), 0.2)
        assert await seance.invoke("loops", "sum_to", 4) == 10
    assert time.monotonic() - started < 5  # dismiss did not wait for a spinning guest


# ---- interrupt() --------------------------------------------------------------------------


def test_interrupt_from_another_thread_stops_call_sync() -> None:
    spirit = Spirit.load_sync(PLAIN_WAT.encode())
    assert spirit.interrupt() is False  # nothing running
    timer = threading.Timer(0.2, spirit.interrupt)
    timer.start()
    with pytest.raises(SpiritInterrupted, match=r"interrupted by Spirit\.interrupt"):
        spirit.call_sync("spin")
    timer.join()
    assert spirit.call_sync("add", 2, 3) == 5  # usable, and the request did not linger
    assert spirit.call_sync("add", 2, 3) == 5


async def test_seance_interrupt_stops_an_awaited_call() -> None:
    async with Seance() as seance:
        await seance.summon("p", PLAIN_WAT.encode(), mode="thread")
        call = asyncio.create_task(seance.invoke("p", "spin"))
        await asyncio.sleep(0.1)
        assert seance.interrupt("p") is True
        with pytest.raises(SpiritInterrupted):
            await asyncio.wait_for(call, 2)
        assert await seance.invoke("p", "add", 1, 2) == 3


def test_a_timeout_still_applies_with_the_epoch_callback() -> None:
    spirit = Spirit.load_sync(PLAIN_WAT.encode(), timeout=0.1)
    with pytest.raises(SpiritTimeout, match=r"timed out after 0\.1s"):
        spirit.call_sync("spin")
    assert spirit.call_sync("add", 1, 2) == 3


# ---- Ctrl-C ---------------------------------------------------------------------------------


def _interrupt_after(cmd: list[str], delay: float = 2.5) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, press Ctrl-C once it is spinning, and collect what it did."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if cmd[1] == "-c":  # our scripts say when the guest is about to run
        assert proc.stdout.readline().strip() == "ready"
        delay = 0.5
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{cmd} ignored Ctrl-C")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize("extra", [[], ["--timeout", "60"]])
def test_vudo_run_stops_on_ctrl_c(extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "vudo_runtime", "run", str(LOOPS), "spin", *extra]
    done = _interrupt_after(cmd)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "vudo: interrupted\n"


def test_call_sync_raises_keyboard_interrupt_on_the_main_thread() -> None:
    script = textwrap.dedent(f"""
        from vudo_runtime import Spirit
        spirit = Spirit.load_sync({str(LOOPS)!r})
        print("ready", flush=True)
        try:
            spirit.call_sync("spin")
        except KeyboardInterrupt:
            print("KeyboardInterrupt", spirit.call_sync("sum_to", 4))
    """)
    done = _interrupt_after([sys.executable, "-c", script])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "KeyboardInterrupt 10"


def test_ctrl_c_outside_a_guest_still_raises() -> None:
    script = textwrap.dedent(f"""
        import time
        from vudo_runtime import Spirit
        Spirit.load_sync({str(LOOPS)!r}).call_sync("sum_to", 4)
        print("ready", flush=True)
        try:
            time.sleep(30)
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
    """)
    done = _interrupt_after([sys.executable, "-c", script])
    assert done.stdout.strip() == "KeyboardInterrupt", done.stderr


# ---- re-entry -----------------------------------------------------------------------------


def _reentrant_loa(kind: str) -> Loa:
    def provides(ctx: HostContext) -> dict[str, Any]:
        async def back_async(n: int) -> int:
            return int(await ctx.spirit.call("add", n, 1))

        def back_sync(n: int) -> int:
            return int(ctx.spirit.call_sync("add", n, 1))

        def back_deep(n: int) -> int:  # re-enters the guest n more times
            return 0 if n == 0 else 1 + int(ctx.spirit.call_sync("back", n - 1))

        chosen = {"async": back_async, "sync": back_sync, "deep": back_deep}[kind]
        return {"back": chosen}

    return Loa(name="loa", capabilities=["back"], provides=provides)


async def test_an_async_host_function_calling_back_fails_at_once() -> None:
    spirit = await load_spirit(
        CONTROL_WAT.encode(), loas=["core", _reentrant_loa("async")], timeout=5
    )
    started = time.monotonic()
    with pytest.raises(SpiritTrap) as caught:
        await asyncio.wait_for(spirit.call("back", 1), 10)
    assert time.monotonic() - started < 2
    assert isinstance(caught.value.__cause__, VudoError)
    assert "called back into it" in str(caught.value.__cause__)
    spirit.close()


def test_a_sync_host_function_may_call_back() -> None:
    spirit = Spirit.load_sync(CONTROL_WAT.encode(), loas=["core", _reentrant_loa("sync")])
    assert spirit.call_sync("back", 41) == 42


# ---- small stacks -----------------------------------------------------------------------

_SMALL_STACK = textwrap.dedent("""
    import asyncio, sys, threading
    sys.path.insert(0, {tests!r})
    from test_control import CONTROL_WAT, _reentrant_loa
    from vudo_runtime import Spirit, SpiritTrap, load_spirit

    threading.stack_size(256 * 1024)
    deep = Spirit.load_sync(CONTROL_WAT.encode(), loas=["core", _reentrant_loa("deep")])
    out = []

    def deep_recursion():
        try:
            deep.call_sync("deep", 10_000_000)
        except SpiritTrap as e:
            out.append("trap" if "stack" in str(e) else str(e))

    def reentry():
        out.append(deep.call_sync("back", 100))

    async def on_loop():
        s = await load_spirit(CONTROL_WAT.encode(), loas=["core", _reentrant_loa("deep")],
                              mode="inline")
        try:
            await s.call("deep", 10_000_000)
        except SpiritTrap:
            out.append("loop-trap")
        out.append(await asyncio.to_thread(s.call_sync, "back", 100))

    for target in (deep_recursion, reentry, lambda: asyncio.run(on_loop())):
        t = threading.Thread(target=target)
        t.start()
        t.join()
    print(out)
""")


def test_small_stack_threads_do_not_crash() -> None:
    script = _SMALL_STACK.format(tests=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['trap', 100, 'loop-trap', 100]"


def test_the_interpreter_exits_after_a_cancelled_spinning_call() -> None:
    script = textwrap.dedent(f"""
        import asyncio
        from vudo_runtime import load_spirit

        async def main():
            spirit = await load_spirit({str(LOOPS)!r}, mode="thread")
            try:
                await asyncio.wait_for(spirit.call("spin"), 0.2)
            except TimeoutError:
                print("timed out")

        asyncio.run(main())
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout.strip()) == (0, "timed out"), done.stderr


def test_ctrl_c_in_asyncio_run_cancels_an_inline_guest() -> None:
    script = textwrap.dedent(f"""
        import asyncio
        from vudo_runtime import load_spirit

        async def main():
            spirit = await load_spirit({str(LOOPS)!r}, mode="inline")
            print("ready", flush=True)
            await spirit.call("spin")

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
    """)
    done = _interrupt_after([sys.executable, "-c", script])
    assert done.stdout.strip() == "KeyboardInterrupt", done.stderr
