"""Séance: lifetimes and errors, messaging, shared state, Ghost links and per-Spirit limits.

Everything runs real wasm (spirits/*.wasm and small inline modules) on a real event loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CALCULATOR, COUNTER, LOOPS, SPIRITS, STATE_WAT

from vudo_runtime import (
    ExportNotFoundError,
    FuelExhausted,
    Ghost,
    MemoryAccessError,
    Message,
    Seance,
    SeanceError,
    Spirit,
    SpiritLoadError,
    SpiritTimeout,
    SpiritTrap,
)

PINGPONG = SPIRITS / "pingpong.wasm"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multi_spirit.py"
PAGE = 65536

#: Messaging in the specification's variants: send(to_ptr, to_len, ptr, len) -> i32,
#: recv() -> pointer to a length-prefixed payload (or -1), pending() -> i32.
SPEC_WAT = b"""
(module
  (import "loa" "vudo_send" (func $send (param i32 i32 i32 i32) (result i32)))
  (import "loa" "vudo_recv" (func $recv (result i32)))
  (import "loa" "vudo_pending" (func $pending (result i32)))
  (import "loa" "vudo_free_message" (func $free (param i32)))
  (memory (export "memory") 1 256)
  ;; send(to: string, payload: string) -> bool
  (func (export "send") (param $to i32) (param $msg i32) (result i32)
    (call $send
      (i32.add (local.get $to) (i32.const 4)) (i32.load (local.get $to))
      (i32.add (local.get $msg) (i32.const 4)) (i32.load (local.get $msg))))
  (func (export "recv") (result i32) (call $recv))
  (func (export "pending") (result i32) (call $pending))
  (func (export "free") (param $ptr i32) (call $free (local.get $ptr))))
"""

#: Imports "add" from module "math": met by calculator.wasm through a link.
APP_WAT = b"""
(module
  (import "math" "add" (func $add (param i64 i64) (result i64)))
  (func (export "add3") (param i64 i64 i64) (result i64)
    (call $add (call $add (local.get 0) (local.get 1)) (local.get 2))))
"""


def sender(spirit: Spirit) -> str:
    """The name pingpong's last `recv_number` recorded."""
    memory = spirit.memory
    assert memory is not None
    return memory.read_string(spirit.call_sync("last_sender"))


# ---- lifecycle and errors -------------------------------------------------------------------


async def test_async_with_dismisses_on_exit() -> None:
    async with Seance() as s:
        calc = await s.summon("calc", CALCULATOR)
        counter = await s.summon("counter", COUNTER)
        assert await s.invoke("calc", "add", 40, 2) == 42
        assert not calc.closed and not counter.closed
    assert calc.closed and counter.closed
    assert s.dismissed and len(s) == 0 and s.names == []
    with pytest.raises(SeanceError, match="dismissed"):
        await s.invoke("calc", "add", 1, 2)
    with pytest.raises(SeanceError, match="dismissed"):
        await s.summon("calc", CALCULATOR)
    with pytest.raises(SeanceError, match="dismissed"):
        s["calc"]
    with pytest.raises(SeanceError, match="dismissed"):
        s.send("host", "calc", b"x")
    await s.dismiss()  # a second dismiss is harmless


async def test_async_with_dismisses_on_error() -> None:
    spirits: list[Spirit] = []
    with pytest.raises(RuntimeError, match="boom"):
        async with Seance() as s:
            spirits.append(await s.summon("calc", CALCULATOR))
            spirits.append(await s.summon("loops", LOOPS))
            raise RuntimeError("boom")
    assert s.dismissed
    assert all(spirit.closed for spirit in spirits)


async def test_membership_and_release() -> None:
    async with Seance() as s:
        calc = await s.summon("calc", CALCULATOR)
        await s.summon("counter", COUNTER)
        assert s["calc"] is calc
        assert "calc" in s and "counter" in s and "nobody" not in s
        assert len(s) == 2
        assert s.names == ["calc", "counter"] == list(s)
        assert "calc" in repr(s)

        await s.release("calc")
        assert calc.closed
        assert "calc" not in s and s.names == ["counter"]
        with pytest.raises(SeanceError, match="no Spirit named 'calc'"):
            await s.invoke("calc", "add", 1, 2)
        # the name is free again
        again = await s.summon("calc", CALCULATOR)
        assert again is not calc
        assert await s.invoke("calc", "add", 2, 3) == 5


async def test_unknown_name_lists_members() -> None:
    async with Seance() as s:
        await s.summon("calc", CALCULATOR)
        with pytest.raises(SeanceError, match=r"no Spirit named 'nope'.*summoned: calc"):
            await s.invoke("nope", "add", 1, 2)
        with pytest.raises(SeanceError, match="'nope'"):
            s["nope"]
        with pytest.raises(SeanceError, match="'nope'"):
            await s.release("nope")
        with pytest.raises(SeanceError, match="'nope'"):
            s.send("host", "nope", b"x")
        with pytest.raises(ExportNotFoundError, match="no function 'nope'"):
            await s.invoke("calc", "nope")


async def test_duplicate_and_empty_names() -> None:
    async with Seance() as s:
        first = await s.summon("calc", CALCULATOR)
        with pytest.raises(SeanceError, match="already summoned"):
            await s.summon("calc", COUNTER)
        assert s["calc"] is first and not first.closed
        assert await s.invoke("calc", "add", 1, 1) == 2
        with pytest.raises(SeanceError, match="non-empty name"):
            await s.summon("", CALCULATOR)


@pytest.mark.parametrize(
    "source",
    [
        bytes(range(7, 250, 3)),  # not wasm, not text
        b"\x00asm\x01\x00\x00\x00\xff\xff\xff",  # the magic, then garbage
        b"(module (func (export",  # WAT that does not compile
        "no/such/spirit.wasm",
    ],
    ids=["random-bytes", "bad-body", "bad-wat", "missing-file"],
)
async def test_summon_broken_module(source: bytes | str) -> None:
    async with Seance() as s:
        with pytest.raises(SpiritLoadError):
            await s.summon("broken", source)
        assert "broken" not in s and len(s) == 0
        # the Séance is unharmed
        await s.summon("broken", CALCULATOR)
        assert await s.invoke("broken", "add", 1, 2) == 3


async def test_missing_file_names_the_path(tmp_path: Path) -> None:
    async with Seance() as s:
        with pytest.raises(SpiritLoadError, match="not found") as info:
            await s.summon("ghost", tmp_path / "absent.wasm")
        assert "absent.wasm" in str(info.value)


# ---- messaging -------------------------------------------------------------------------------


async def test_ping_sends_pong_replies() -> None:
    async with Seance() as s:
        ping = await s.summon("ping", PINGPONG)
        pong = await s.summon("pong", PINGPONG)
        assert await s.invoke("ping", "send_number", "pong", 0, 41) == 1
        assert s.pending("pong") == 1
        assert await s.invoke("pong", "pending", 0) == 1
        assert s.pending("ping") == 0

        assert await s.invoke("pong", "serve", 0) == 1  # receives 41, replies 42
        assert sender(pong) == "ping"
        assert s.pending("pong") == 0 and s.pending("ping") == 1

        assert await s.invoke("ping", "recv_number", 0) == 42
        assert sender(ping) == "pong"
        assert await s.invoke("ping", "recv_number", 0) == -1  # nothing left


async def test_broadcast_reaches_every_other_member() -> None:
    async with Seance() as s:
        names = ["ping", "pong", "third"]
        for name in names:
            await s.summon(name, PINGPONG)
        assert await s.invoke("ping", "broadcast_number", 7) == 2
        assert s.pending("ping") == 0
        for name in ("pong", "third"):
            assert s.pending(name) == 1
            assert await s.invoke(name, "recv_number", 0) == 7
            assert sender(s[name]) == "ping"


async def test_fifo_per_sender_and_receiver() -> None:
    async with Seance() as s:
        await s.summon("ping", PINGPONG)
        await s.summon("pong", PINGPONG)
        await s.summon("other", PINGPONG)
        for i in range(100):
            assert await s.invoke("ping", "send_number", "pong", 0, i) == 1
            if i % 10 == 0:  # another sender interleaved: each sender's order is kept
                assert await s.invoke("other", "send_number", "pong", 0, 1000 + i) == 1
        got: dict[str, list[int]] = {"ping": [], "other": []}
        while (n := await s.invoke("pong", "recv_number", 0)) >= 0:
            got[sender(s["pong"])].append(n)
        assert got["ping"] == list(range(100))
        assert got["other"] == [1000 + i for i in range(0, 100, 10)]


async def test_channels_are_separate_queues() -> None:
    async with Seance() as s:
        await s.summon("ping", PINGPONG)
        await s.summon("pong", PINGPONG)
        await s.invoke("ping", "send_number", "pong", 1, 5)
        assert s.pending("pong", channel=0) == 0
        assert s.pending("pong", channel=1) == 1
        assert await s.invoke("pong", "recv_number", 0) == -1
        assert await s.invoke("pong", "serve", 1) == 1  # the reply goes out on channel 1
        assert s.pending("ping", channel=1) == 1
        assert await s.invoke("ping", "recv_number", 1) == 6


async def test_full_queue_refuses_instead_of_dropping() -> None:
    async with Seance(queue_limit=3) as s:
        await s.summon("ping", PINGPONG)
        await s.summon("pong", PINGPONG)
        results = [await s.invoke("ping", "send_number", "pong", 0, i) for i in range(4)]
        assert results == [1, 1, 1, 0]
        assert s.send("host", "pong", (99).to_bytes(8, "little")) is False
        assert s.pending("pong") == 3
        # the three accepted ones arrive; the refused ones never do
        assert await s.invoke("pong", "recv_number", 0) == 0
        assert s.send("host", "pong", (99).to_bytes(8, "little")) is True
        got = [await s.invoke("pong", "recv_number", 0) for _ in range(4)]
        assert got == [1, 2, 99, -1]


async def test_send_to_unknown_member_fails() -> None:
    async with Seance() as s:
        await s.summon("ping", PINGPONG)
        assert await s.invoke("ping", "send_number", "nobody", 0, 1) == 0
        assert await s.invoke("ping", "broadcast_number", 1) == 0  # nobody else is here


async def test_host_sends_to_a_spirit() -> None:
    async with Seance() as s:
        pong = await s.summon("pong", PINGPONG)
        assert s.send("host", "pong", (1234).to_bytes(8, "little")) is True
        assert s.send("host", "pong", "ab") is True  # str is sent as UTF-8
        assert s.pending("pong") == 2
        assert await s.invoke("pong", "recv_number", 0) == 1234
        assert sender(pong) == "host"
        assert await s.invoke("pong", "recv_number", 0) == int.from_bytes(b"ab", "little")


async def test_payload_too_large_stays_queued() -> None:
    async with Seance() as s:
        await s.summon("pong", PINGPONG)
        assert s.send("host", "pong", b"123456789")  # 9 bytes: pingpong reads 8
        assert await s.invoke("pong", "recv_number", 0) == -2
        assert s.pending("pong") == 1


async def test_host_receives_what_a_spirit_sends() -> None:
    async with Seance() as s:
        await s.summon("ping", PINGPONG)
        listening = asyncio.create_task(s.receive("host", timeout=5))
        await asyncio.sleep(0)  # the listener joins the bus
        assert await s.invoke("ping", "send_number", "host", 0, 77) == 1
        message = await listening
        assert isinstance(message, Message)
        assert message.sender == "ping" and message.to == "host" and message.channel == 0
        assert int.from_bytes(message.payload, "little") == 77


async def test_host_receive_times_out() -> None:
    async with Seance() as s:
        await s.summon("ping", PINGPONG)
        start = time.perf_counter()
        with pytest.raises(TimeoutError, match="no message for 'host'"):
            await s.receive("host", timeout=0.05)
        assert time.perf_counter() - start < 1.0
        # a message sent after the timeout is still delivered to the next receive
        assert await s.invoke("ping", "send_number", "host", 0, 5) == 1
        message = await s.receive("host", timeout=1)
        assert int.from_bytes(message.payload, "little") == 5


async def test_spec_variant_talks_to_ts_variant() -> None:
    async with Seance() as s:
        spec = await s.summon("a", SPEC_WAT)
        await s.summon("b", PINGPONG)
        assert await s.invoke("a", "recv") == -1
        assert await s.invoke("a", "pending") == 0
        assert await s.invoke("a", "send", "b", "hi") == 1
        assert await s.invoke("a", "send", "nobody", "hi") == 0

        assert await s.invoke("b", "serve", 0) == 1  # receives b"hi", replies with it + 1
        assert sender(s["b"]) == "a"
        assert await s.invoke("a", "pending") == 1
        ptr = await s.invoke("a", "recv")
        assert ptr >= 0
        memory = spec.memory
        assert memory is not None
        reply = memory.read_bytes_prefixed(ptr)
        assert reply == (int.from_bytes(b"hi", "little") + 1).to_bytes(8, "little")
        await s.invoke("a", "free", ptr)
        assert await s.invoke("a", "recv") == -1


async def test_messages_to_a_released_spirit_are_refused() -> None:
    async with Seance() as s:
        await s.summon("ping", PINGPONG)
        await s.summon("pong", PINGPONG)
        await s.invoke("ping", "send_number", "pong", 0, 1)
        await s.release("pong")
        assert await s.invoke("ping", "send_number", "pong", 0, 2) == 0
        await s.summon("pong", PINGPONG)  # a new member starts with an empty queue
        assert s.pending("pong") == 0


def test_example_plays_ping_pong(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,  # the example finds its Spirits from anywhere
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ping -> pong: 1" in lines
    assert "pong -> ping: 2" in lines
    assert "ping -> pong: 3" in lines
    assert "pong -> ping: 4" in lines
    assert any(line.startswith("broadcast") for line in lines)


# ---- shared state -----------------------------------------------------------------------------


async def test_state_shared_between_spirits() -> None:
    async with Seance() as s:
        await s.summon("writer", STATE_WAT)
        reader = await s.summon("reader", STATE_WAT)
        assert await s.invoke("writer", "set", "greeting", "hello") == 0
        assert s.state["greeting"] == b"hello"

        assert await s.invoke("reader", "get", "greeting", 64) == 5
        memory = reader.memory
        assert memory is not None
        assert memory.read_string(await s.invoke("reader", "value")) == "hello"

        assert await s.invoke("reader", "get", "missing", 64) == -1
        assert await s.invoke("reader", "get", "greeting", 4) == -2  # buffer too small
        assert memory.read_string(await s.invoke("reader", "value")) == "hello"  # untouched


async def test_state_written_from_python() -> None:
    async with Seance() as s:
        spirit = await s.summon("reader", STATE_WAT)
        s.state["k"] = b"v"
        s.state["text"] = "héllo"  # str is stored as UTF-8
        assert await s.invoke("reader", "get", "k", 16) == 1
        memory = spirit.memory
        assert memory is not None
        assert memory.read_string(await s.invoke("reader", "value")) == "v"
        assert await s.invoke("reader", "get", "text", 16) == len("héllo".encode())
        assert memory.read_string(await s.invoke("reader", "value")) == "héllo"
        assert set(s.state) == {"k", "text"} and len(s.state) == 2
        del s.state["k"]
        assert await s.invoke("reader", "get", "k", 16) == -1


async def test_state_is_per_seance() -> None:
    async with Seance() as one, Seance() as two:
        await one.summon("w", STATE_WAT)
        await two.summon("r", STATE_WAT)
        await one.invoke("w", "set", "k", "1")
        assert await two.invoke("r", "get", "k", 16) == -1
        assert "k" not in two.state


# ---- Ghost links --------------------------------------------------------------------------------


async def test_link_meets_imports_with_a_member() -> None:
    async with Seance() as s:
        await s.summon("calc", CALCULATOR)
        app = await s.summon("app", APP_WAT, links={"math": "calc"})
        assert await s.invoke("app", "add3", 1, 2, 3) == 6
        assert app.call_sync("add3", 10, 20, 30) == 60
        assert await s.invoke("calc", "add", 2, 2) == 4  # the provider still works alone


async def test_unlinked_import_is_a_load_error() -> None:
    async with Seance() as s:
        with pytest.raises(SpiritLoadError, match=r"math\.add"):
            await s.summon("app", APP_WAT)


async def test_link_to_unknown_member() -> None:
    async with Seance() as s:
        with pytest.raises(SeanceError, match=r"'math'.*'calc'.*no such Spirit"):
            await s.summon("app", APP_WAT, links={"math": "calc"})
        assert "app" not in s


async def test_ghost_summoned_as_one_unit() -> None:
    ghost = Ghost(parts={"calc": CALCULATOR, "app": APP_WAT}, links={"app": {"math": "calc"}})
    async with Seance() as s:
        entry = await s.summon("g", ghost)
        assert s.names == ["g.calc", "g.app"]
        assert entry is s["g.app"]  # the last part is the entry by default
        assert await entry.call("add3", 4, 5, 6) == 15
        assert await s.invoke("g.app", "add3", 1, 1, 1) == 3
        assert await s.invoke("g.calc", "mul", 6, 7) == 42

        first = await s.summon("h", Ghost(parts=ghost.parts, links=ghost.links, entry="calc"))
        assert first is s["h.calc"]
    assert entry.closed and first.closed


async def test_ghost_with_unknown_part_summons_nothing() -> None:
    async with Seance() as s:
        bad = Ghost(parts={"calc": CALCULATOR, "app": APP_WAT}, links={"app": {"math": "nope"}})
        with pytest.raises(SeanceError, match="'nope'"):
            await s.summon("g", bad)
        assert len(s) == 0
        with pytest.raises(SeanceError, match="'ghost'"):
            await s.summon("g", Ghost(parts={"calc": CALCULATOR}, links={"ghost": {}}))
        with pytest.raises(SeanceError, match="entry"):
            await s.summon("g", Ghost(parts={"calc": CALCULATOR}, entry="nope"))
        with pytest.raises(SeanceError, match="no parts"):
            await s.summon("g", Ghost(parts={}))
        assert len(s) == 0


async def test_ghost_part_that_fails_takes_the_others_along() -> None:
    async with Seance() as s:
        with pytest.raises(SpiritLoadError):
            await s.summon("g", Ghost(parts={"calc": CALCULATOR, "app": APP_WAT}))  # unlinked
        assert len(s) == 0
        await s.summon("g", Ghost(parts={"calc": CALCULATOR}))  # the names are free
        assert s.names == ["g.calc"]


# ---- limits, failures and restarts ------------------------------------------------------------


async def test_timeout_failure_and_restart() -> None:
    async with Seance() as s:
        await s.summon("loops", LOOPS, timeout=0.05, mode="thread")
        start = time.perf_counter()
        async with asyncio.timeout(10):  # a guard only; the bound asserted is 1 s
            with pytest.raises(SpiritTimeout) as info:
                await s.invoke("loops", "spin")
        assert time.perf_counter() - start < 1.0
        assert isinstance(info.value, TimeoutError)
        assert info.value.spirit == "loops" and info.value.function == "spin"
        assert s.failures["loops"] is info.value

        old = s["loops"]
        fresh = await s.restart("loops")
        assert fresh is s["loops"] and fresh is not old and old.closed
        assert "loops" not in s.failures
        assert await s.invoke("loops", "fib", 10) == 55


async def test_restart_gives_a_fresh_instance() -> None:
    async with Seance() as s:
        await s.summon("counter", COUNTER)
        ptr = await s.invoke("counter", "new_Counter", 5)
        assert await s.invoke("counter", "Counter.increment", ptr) == 6
        await s.restart("counter")
        assert await s.invoke("counter", "Counter.get_value", ptr) == 0  # memory is new
        assert await s.invoke("counter", "new_Counter", 1) == ptr  # and so is the heap
        with pytest.raises(SeanceError, match="'nope'"):
            await s.restart("nope")


async def test_restart_on_trap() -> None:
    async with Seance() as s:
        first = await s.summon("counter", COUNTER, restart="on-trap")
        ptr = await s.invoke("counter", "new_Counter", 1)
        assert await s.invoke("counter", "Counter.increment", ptr) == 2
        with pytest.raises(SpiritTrap, match="out of bounds") as info:
            await s.invoke("counter", "Counter.increment", -16)  # self far out of memory
        assert s.failures["counter"] is info.value
        assert first.closed and s["counter"] is not first
        # the next invoke works, on a fresh instance
        assert await s.invoke("counter", "Counter.get_value", ptr) == 0
        assert await s.invoke("counter", "new_Counter", 10) == ptr
        assert await s.invoke("counter", "Counter.increment", ptr) == 11
        assert "counter" in s.failures  # still on record
        with pytest.raises(ValueError, match="restart"):
            await s.summon("other", COUNTER, restart="always")  # type: ignore[arg-type]


async def test_without_restart_a_trapped_spirit_stays() -> None:
    async with Seance() as s:
        spirit = await s.summon("loops", LOOPS)
        with pytest.raises(SpiritTrap):
            await s.invoke("loops", "unreachable")
        assert s["loops"] is spirit and not spirit.closed
        assert isinstance(s.failures["loops"], SpiritTrap)
        assert await s.invoke("loops", "fib", 7) == 13


async def test_fuel_exhaustion() -> None:
    async with Seance() as s:
        await s.summon("loops", LOOPS, fuel=10_000)
        with pytest.raises(FuelExhausted, match="fuel"):
            await s.invoke("loops", "burn", 10**6)
        assert isinstance(s.failures["loops"], FuelExhausted)
        assert await s.invoke("loops", "sum_to", 10) == 55  # each call gets a full budget
        with pytest.raises(FuelExhausted):
            await s.invoke("loops", "spin")


async def test_max_memory_is_enforced() -> None:
    async with Seance() as s:
        spirit = await s.summon("loops", LOOPS, max_memory=3 * PAGE)
        assert await s.invoke("loops", "grow_memory", 1) == 1
        assert await s.invoke("loops", "grow_memory", 1) == 2
        assert await s.invoke("loops", "grow_memory", 1) == -1  # refused in the guest
        assert await s.invoke("loops", "grow_memory", 100) == -1
        assert "loops" not in s.failures  # a refusal is not a trap
        memory = spirit.memory
        assert memory is not None
        assert memory.pages == 3
        with pytest.raises(MemoryAccessError, match="cannot"):
            memory.alloc(4 * PAGE)
        assert await s.invoke("loops", "fib", 5) == 5

        other = await s.summon("free", LOOPS)  # the limit is per Spirit
        assert await s.invoke("free", "grow_memory", 10) == 1
        assert other.memory is not None and other.memory.pages == 11
