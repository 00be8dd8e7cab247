"""The Séance's behaviours on the local Séance and on the Ray backend, side by side.

Every test taking ``make`` (or ``seance``) runs twice: ``local`` is ``vudo_runtime.Seance``,
``ray`` is ``RaySeance`` on two Ray actors (one ``ray.init(num_cpus=2)`` per module).
Spirits that must talk across processes are placed on different actors explicitly.
Skipped as a whole when Ray is not installed (``pip install 'vudo-runtime[ray]'``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

import pytest

ray = pytest.importorskip("ray")

from conftest import CALCULATOR, COUNTER, LOOPS, SPIRITS, STATE_WAT, burn_expected  # noqa: E402

from vudo_runtime import (  # noqa: E402
    ExportNotFoundError,
    FuelExhausted,
    Ghost,
    Message,
    RequestTimeout,
    Seance,
    SeanceError,
    SpiritLoadError,
    SpiritTimeout,
    SpiritTrap,
    StateQuotaError,
    TrustPolicy,
    UnsignedSpiritError,
)
from vudo_runtime.loas.state import MemoryBackend  # noqa: E402
from vudo_runtime.ray_backend import (  # noqa: E402
    RayBackend,
    RaySeance,
    RemoteSpirit,
    restore_trap_handlers,
)
from vudo_runtime.signing import generate_key, sign  # noqa: E402

PINGPONG = SPIRITS / "pingpong.wasm"
ROOT = Path(__file__).resolve().parent.parent

#: Request/reply: ask(to) requests "ping" from `to` (a DOL string); serve() answers the
#: next request with "re:" + its payload; collect() -> the next message's reply_to.
REQUEST_WAT = b"""
(module
  (import "vudo" "vudo_recv" (func $recv (param i32 i32 i32 i32 i32) (result i32)))
  (import "vudo" "vudo_request_id" (func $request_id (result i64)))
  (import "vudo" "vudo_reply_to" (func $reply_to (result i64)))
  (import "vudo" "vudo_reply" (func $reply (param i64 i32 i32) (result i32)))
  (import "vudo" "vudo_request" (func $request (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "re:")
  (data (i32.const 64) "ping")
  (func (export "serve") (result i32)
    (local $n i32)
    (local.set $n (call $recv (i32.const 0) (i32.const 128) (i32.const 64)
                              (i32.const 3) (i32.const 256)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const -1))))
    (call $reply (call $request_id) (i32.const 0) (i32.add (local.get $n) (i32.const 3))))
  (func (export "ask") (param $to i32) (result i64)
    (call $request (i32.add (local.get $to) (i32.const 4)) (i32.load (local.get $to))
                   (i32.const 64) (i32.const 4)))
  (func (export "collect") (result i64)
    (if (i32.lt_s (call $recv (i32.const 0) (i32.const 128) (i32.const 64)
                              (i32.const 512) (i32.const 256))
                  (i32.const 0))
      (then (return (i64.const -1))))
    (call $reply_to)))
"""

#: Imports "add" from module "math": met by calculator.wasm through a link.
APP_WAT = b"""
(module
  (import "math" "add" (func $add (param i64 i64) (result i64)))
  (func (export "add3") (param i64 i64 i64) (result i64)
    (call $add (call $add (local.get 0) (local.get 1)) (local.get 2))))
"""

AnySeance: TypeAlias = Seance | RaySeance


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayBackend]:
    """One Ray for the module (ray.init takes seconds), its actors compiling into a
    temporary cache as the rest of the suite does."""
    cache = tmp_path_factory.mktemp("ray-vudo-cache")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"VUDO_CACHE_DIR": str(cache)}},
    )
    with RayBackend(actors=2) as made:  # also puts wasmtime's trap handlers back (see there)
        yield made
    ray.shutdown()
    assert restore_trap_handlers()  # or a local trap in a later test would kill pytest


@pytest.fixture(params=["local", "ray"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., AnySeance]]:
    """Makes Séances of the parametrized kind; dismisses them after the test."""
    backend = request.getfixturevalue("backend") if request.param == "ray" else None
    made: list[AnySeance] = []

    def factory(**kwargs: Any) -> AnySeance:
        s: AnySeance = Seance(**kwargs, backend=backend)  # a RaySeance when backend is set
        made.append(s)
        return s

    yield factory
    for s in made:
        await s.dismiss()


@pytest.fixture
def seance(make: Callable[..., AnySeance]) -> AnySeance:
    return make()


def is_ray(s: AnySeance) -> bool:
    return isinstance(s, RaySeance)


async def summon(s: AnySeance, name: str, source: Any, actor: int = 0, **kw: Any) -> Any:
    """Summon; on Ray on host actor ``actor`` (so two Spirits can be made to talk across
    processes)."""
    if isinstance(s, RaySeance):
        spirit = await s.summon(name, source, actor=actor, **kw)
        assert s.placement[name] == actor
        return spirit
    return await s.summon(name, source, **kw)


async def string_result(s: AnySeance, name: str, fn: str) -> str:
    """The DOL string whose pointer ``fn`` returns (read where the Spirit's memory is)."""
    if isinstance(s, RaySeance):
        text: str = await s.invoke(name, fn, returns=str)
        return text
    spirit = s[name]
    assert spirit.memory is not None
    return spirit.memory.read_string(await s.invoke(name, fn))


async def invoke_many(s: AnySeance, name: str, fn: str, calls: list[tuple[Any, ...]]) -> list[Any]:
    many = getattr(s, "invoke_many", None)
    if many is not None:
        results: list[Any] = await many(name, fn, calls)
        return results
    return [await s.invoke(name, fn, *args) for args in calls]


def number(n: int) -> bytes:
    return n.to_bytes(8, "little")


# ---- lifetime and calls -------------------------------------------------------------------------


async def test_summon_and_invoke(seance: AnySeance) -> None:
    await seance.summon("calc", CALCULATOR)
    await seance.summon("other", CALCULATOR)
    assert await seance.invoke("calc", "add", 40, 2) == 42
    assert await seance.invoke("calc", "divmod", 7, 2) == (3, 1)
    assert await seance.invoke("calc", "average", 1.0, 2.0) == 1.5
    assert "calc" in seance and "nobody" not in seance and len(seance) == 2
    assert seance.names == ["calc", "other"] == list(seance)
    if isinstance(seance, RaySeance):  # least loaded first: one Spirit on each actor
        assert sorted(seance.placement.values()) == [0, 1]
        spirit = seance["calc"]
        assert isinstance(spirit, RemoteSpirit) and await spirit.call("mul", 6, 7) == 42


async def test_counter_state_is_per_spirit(seance: AnySeance) -> None:
    await summon(seance, "a", COUNTER, actor=0)
    await summon(seance, "b", COUNTER, actor=1)
    pa = await seance.invoke("a", "new_Counter", 10)
    pb = await seance.invoke("b", "new_Counter", 100)
    for expected in (11, 12, 13):
        assert await seance.invoke("a", "Counter.increment", pa) == expected
    assert await seance.invoke("b", "Counter.increment", pb) == 101
    assert await seance.invoke("a", "Counter.get_value", pa) == 13
    assert await seance.invoke("b", "Counter.add", pb, 9) == 110


async def test_trap_is_a_spirit_trap_with_its_message(seance: AnySeance) -> None:
    await seance.summon("loops", LOOPS)
    with pytest.raises(SpiritTrap, match="unreachable") as info:
        await seance.invoke("loops", "unreachable")
    assert type(info.value) is SpiritTrap
    assert info.value.spirit == "loops" and info.value.function == "unreachable"
    assert str(info.value).startswith("Spirit call loops.unreachable trapped:")
    assert seance.failures["loops"] is info.value
    assert await seance.invoke("loops", "fib", 10) == 55  # the Spirit stays usable
    with pytest.raises(SpiritTrap, match="out of bounds"):
        await seance.invoke("loops", "oob_read")
    stats = seance.stats()["loops"]
    assert stats.calls == 3 and stats.traps == 2 and stats.timeouts == 0


async def test_unknown_function_and_bad_arguments(seance: AnySeance) -> None:
    await seance.summon("calc", CALCULATOR)
    with pytest.raises(ExportNotFoundError, match=r"no function 'nope'.*add, sub") as info:
        await seance.invoke("calc", "nope")
    assert info.value.available[0] == "add"
    with pytest.raises(TypeError, match="add"):
        await seance.invoke("calc", "add", "x", 1.5)


async def test_timeout(seance: AnySeance) -> None:
    await seance.summon("loops", LOOPS, timeout=0.05, mode="thread")
    start = time.perf_counter()
    with pytest.raises(SpiritTimeout) as info:
        await seance.invoke("loops", "spin")
    assert time.perf_counter() - start < 2.0
    assert isinstance(info.value, TimeoutError)
    assert info.value.spirit == "loops" and info.value.function == "spin"
    assert seance.failures["loops"] is info.value
    assert seance.stats()["loops"].timeouts == 1
    assert await seance.invoke("loops", "fib", 10) == 55


async def test_fuel_exhaustion(seance: AnySeance) -> None:
    await seance.summon("loops", LOOPS, fuel=10_000)
    with pytest.raises(FuelExhausted, match="fuel"):
        await seance.invoke("loops", "burn", 10**6)
    assert await seance.invoke("loops", "sum_to", 10) == 55


async def test_release_then_invoke(seance: AnySeance) -> None:
    await seance.summon("calc", CALCULATOR)
    await seance.release("calc")
    assert "calc" not in seance and seance.names == []
    with pytest.raises(SeanceError, match="no Spirit named 'calc'"):
        await seance.invoke("calc", "add", 1, 2)
    with pytest.raises(SeanceError, match="'calc'"):
        await seance.release("calc")
    await seance.summon("calc", CALCULATOR)  # the name is free again
    assert await seance.invoke("calc", "add", 2, 3) == 5


async def test_duplicate_and_empty_names(seance: AnySeance) -> None:
    await seance.summon("calc", CALCULATOR)
    with pytest.raises(SeanceError, match="already summoned"):
        await seance.summon("calc", COUNTER)
    assert await seance.invoke("calc", "add", 1, 1) == 2
    with pytest.raises(SeanceError, match="non-empty name"):
        await seance.summon("", CALCULATOR)


@pytest.mark.parametrize(
    "source",
    [b"\x00asm\x01\x00\x00\x00\xff\xff\xff", b"(module (func (export", "no/such/spirit.wasm"],
    ids=["bad-body", "bad-wat", "missing-file"],
)
async def test_summon_broken_module(seance: AnySeance, source: bytes | str) -> None:
    with pytest.raises(SpiritLoadError):
        await seance.summon("broken", source)
    assert "broken" not in seance and len(seance) == 0
    await seance.summon("broken", CALCULATOR)  # the Séance is unharmed
    assert await seance.invoke("broken", "add", 1, 2) == 3


async def test_restart_on_trap(seance: AnySeance) -> None:
    await seance.summon("counter", COUNTER, restart="on-trap")
    ptr = await seance.invoke("counter", "new_Counter", 1)
    assert await seance.invoke("counter", "Counter.increment", ptr) == 2
    with pytest.raises(SpiritTrap, match="out of bounds"):
        await seance.invoke("counter", "Counter.increment", -16)
    assert await seance.invoke("counter", "Counter.get_value", ptr) == 0  # a fresh instance
    await seance.invoke("counter", "new_Counter", 5)
    await seance.restart("counter")
    assert "counter" not in seance.failures
    assert await seance.invoke("counter", "Counter.get_value", ptr) == 0


async def test_dismiss(make: Callable[..., AnySeance]) -> None:
    async with make() as s:
        await s.summon("calc", CALCULATOR)
        assert await s.invoke("calc", "add", 40, 2) == 42
    assert s.dismissed and len(s) == 0 and s.names == [] and s.stats() == {}
    with pytest.raises(SeanceError, match="dismissed"):
        await s.invoke("calc", "add", 1, 2)
    with pytest.raises(SeanceError, match="dismissed"):
        await s.summon("calc", CALCULATOR)
    with pytest.raises(SeanceError, match="dismissed"):
        s.send("host", "calc", b"x")
    await s.dismiss()  # a second dismiss is harmless


async def test_dismiss_on_error(make: Callable[..., AnySeance]) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with make() as s:
            await s.summon("calc", CALCULATOR)
            raise RuntimeError("boom")
    assert s.dismissed


async def test_trust_policy(seance: AnySeance) -> None:
    private, public = generate_key()
    trust = TrustPolicy(keys=public)  # its key objects never cross: checked on the driver
    await seance.summon("signed", sign(CALCULATOR.read_bytes(), private), trust=trust)
    assert await seance.invoke("signed", "add", 2, 2) == 4
    with pytest.raises(UnsignedSpiritError, match="not signed"):
        await seance.summon("unsigned", CALCULATOR, trust=trust)
    assert "unsigned" not in seance


# ---- invoke_many --------------------------------------------------------------------------------


async def test_invoke_many_equals_one_by_one(seance: AnySeance) -> None:
    await seance.summon("calc", CALCULATOR)
    await seance.summon("counter", COUNTER)
    calls = [(i, 3 * i - 7) for i in range(200)]
    one_by_one = [await seance.invoke("calc", "add", a, b) for a, b in calls]
    assert await invoke_many(seance, "calc", "add", calls) == one_by_one
    assert await invoke_many(seance, "calc", "divmod", [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]
    ptr = await seance.invoke("counter", "new_Counter", 0)
    assert await invoke_many(seance, "counter", "Counter.increment", [(ptr,)] * 50) == list(
        range(1, 51)
    )  # calls in order, on the same instance
    assert await seance.invoke("counter", "Counter.get_value", ptr) == 50
    assert await invoke_many(seance, "calc", "add", []) == []
    assert seance.stats()["calc"].calls == 200 + 200 + 2


async def test_invoke_many_stops_at_a_trap(seance: AnySeance) -> None:
    await seance.summon("counter", COUNTER)
    ptr = await seance.invoke("counter", "new_Counter", 0)
    calls = [(ptr,), (ptr,), (-16,), (ptr,)]
    with pytest.raises(SpiritTrap, match="out of bounds") as info:
        await invoke_many(seance, "counter", "Counter.increment", calls)
    assert info.value.function == "Counter.increment"
    assert seance.failures["counter"] is info.value
    assert await seance.invoke("counter", "Counter.get_value", ptr) == 2  # the two before ran
    stats = seance.stats()["counter"]
    assert stats.traps == 1 and stats.calls == 1 + 3 + 1


async def test_invoke_many_on_ray(backend: RayBackend) -> None:
    async with RaySeance(backend) as s:
        await s.summon("counter", COUNTER, restart="on-trap")
        ptr = await s.invoke("counter", "new_Counter", 0)
        calls: list[Any] = [(ptr,), [ptr], (-16,), (ptr,)]
        results = await s.invoke_many("counter", "Counter.increment", calls, return_exceptions=True)
        assert results[:2] == [1, 2] and isinstance(results[2], SpiritTrap)
        assert results[3] == 1  # restarted on the trap: a fresh instance (zeroed memory)
        assert s.failures["counter"] is results[2]
        p1, p2 = await s.invoke_many("counter", "new_Counter", [7, 8])  # one argument each
        assert p1 == ptr  # the fresh instance's heap starts where the old one did
        assert await s["counter"].call_many("Counter.get_value", iter([p1, p2])) == [7, 8]
        stats = (await s.stats_async())["counter"]
        assert stats.calls == 1 + 4 + 2 + 2 and stats.traps == 1


# ---- messaging ---------------------------------------------------------------------------------


async def test_ping_pong_across_actors(seance: AnySeance) -> None:
    await summon(seance, "ping", PINGPONG, actor=0)
    await summon(seance, "pong", PINGPONG, actor=1)
    assert await seance.invoke("ping", "send_number", "pong", 0, 41) == 1
    assert seance.pending("pong") == 1 and seance.pending("ping") == 0
    assert await seance.invoke("pong", "pending", 0) == 1
    assert await seance.invoke("pong", "serve", 0) == 1  # receives 41, replies 42
    assert await string_result(seance, "pong", "last_sender") == "ping"
    assert seance.pending("pong") == 0 and seance.pending("ping") == 1
    assert await seance.invoke("ping", "recv_number", 0) == 42
    assert await string_result(seance, "ping", "last_sender") == "pong"
    assert await seance.invoke("ping", "recv_number", 0) == -1


async def test_fifo_channels_and_unknown_receivers(seance: AnySeance) -> None:
    await summon(seance, "ping", PINGPONG, actor=0)
    await summon(seance, "pong", PINGPONG, actor=1)
    await summon(seance, "other", PINGPONG, actor=0)
    for i in range(30):
        assert await seance.invoke("ping", "send_number", "pong", 0, i) == 1
        if i % 10 == 0:
            assert await seance.invoke("other", "send_number", "pong", 0, 1000 + i) == 1
    got: dict[str, list[int]] = {"ping": [], "other": []}
    while (n := await seance.invoke("pong", "recv_number", 0)) >= 0:
        got[await string_result(seance, "pong", "last_sender")].append(n)
    assert got == {"ping": list(range(30)), "other": [1000, 1010, 1020]}
    await seance.invoke("ping", "send_number", "pong", 1, 5)
    assert seance.pending("pong", channel=0) == 0 and seance.pending("pong", channel=1) == 1
    assert await seance.invoke("pong", "serve", 1) == 1
    assert await seance.invoke("ping", "recv_number", 1) == 6
    assert await seance.invoke("ping", "send_number", "nobody", 0, 1) == 0


async def test_actors_sending_to_each_other_at_once_do_not_deadlock(seance: AnySeance) -> None:
    """Sends that block their actor's main loop (inline calls) while the other actor does
    the same: deliveries run in the actors' bus concurrency group, never behind them."""
    await summon(seance, "ping", PINGPONG, actor=0, mode="inline")
    await summon(seance, "pong", PINGPONG, actor=1, mode="inline")
    async with asyncio.timeout(60):
        sent = await asyncio.gather(
            *(seance.invoke("ping", "send_number", "pong", 0, i) for i in range(40)),
            *(seance.invoke("pong", "send_number", "ping", 0, i) for i in range(40)),
            invoke_many(seance, "ping", "send_number", [("pong", 0, 100 + i) for i in range(40)]),
            invoke_many(seance, "pong", "send_number", [("ping", 0, 100 + i) for i in range(40)]),
        )
    assert sent[:80] == [1] * 80 and sent[80] == sent[81] == [1] * 40
    assert seance.pending("ping") == seance.pending("pong") == 80


async def test_broadcast_across_actors(seance: AnySeance) -> None:
    for k, name in enumerate(["ping", "pong", "third"]):
        await summon(seance, name, PINGPONG, actor=k % 2)
    assert await seance.invoke("ping", "broadcast_number", 7) == 2
    assert seance.pending("ping") == 0
    for name in ("pong", "third"):
        assert await seance.invoke(name, "recv_number", 0) == 7
        assert await string_result(seance, name, "last_sender") == "ping"


async def test_full_queue_refuses(make: Callable[..., AnySeance]) -> None:
    s = make(queue_limit=3)
    await summon(s, "ping", PINGPONG, actor=0)
    await summon(s, "pong", PINGPONG, actor=1)
    assert [await s.invoke("ping", "send_number", "pong", 0, i) for i in range(4)] == [1, 1, 1, 0]
    assert s.send("host", "pong", number(99)) is False
    assert await s.invoke("pong", "recv_number", 0) == 0
    assert s.send("host", "pong", number(99)) is True
    assert [await s.invoke("pong", "recv_number", 0) for _ in range(4)] == [1, 2, 99, -1]


async def test_released_spirit_gets_no_messages(seance: AnySeance) -> None:
    await summon(seance, "ping", PINGPONG, actor=0)
    await summon(seance, "pong", PINGPONG, actor=1)
    await seance.invoke("ping", "send_number", "pong", 0, 1)
    await seance.release("pong")
    assert await seance.invoke("ping", "send_number", "pong", 0, 2) == 0
    await summon(seance, "pong", PINGPONG, actor=0)  # back, elsewhere, with an empty queue
    assert seance.pending("pong") == 0
    assert await seance.invoke("ping", "send_number", "pong", 0, 3) == 1
    assert await seance.invoke("pong", "recv_number", 0) == 3


async def test_host_sends_and_receives(seance: AnySeance) -> None:
    await summon(seance, "ping", PINGPONG, actor=1)
    assert seance.send("host", "ping", number(1234)) is True
    assert seance.send("host", "ping", "ab") is True  # str is sent as UTF-8
    assert await seance.invoke("ping", "recv_number", 0) == 1234
    assert await string_result(seance, "ping", "last_sender") == "host"
    assert await seance.invoke("ping", "recv_number", 0) == int.from_bytes(b"ab", "little")
    with pytest.raises(SeanceError, match="'nope'"):
        seance.send("host", "nope", b"x")

    listening = asyncio.create_task(seance.receive("host", timeout=10))
    await asyncio.sleep(0)  # the listener joins (on Ray: once the hub actor has the call)
    while await seance.invoke("ping", "send_number", "host", 0, 77) == 0:
        await asyncio.sleep(0.01)
    message = await listening
    assert isinstance(message, Message)
    assert message.sender == "ping" and message.to == "host" and message.channel == 0
    assert int.from_bytes(message.payload, "little") == 77

    with pytest.raises(TimeoutError, match="no message for 'host'"):
        await seance.receive("host", timeout=0.05)
    assert await seance.invoke("ping", "send_number", "host", 0, 5) == 1  # still listening
    message = await seance.receive("host", timeout=5)
    assert int.from_bytes(message.payload, "little") == 5


async def test_requests_across_actors(seance: AnySeance) -> None:
    await summon(seance, "server", REQUEST_WAT, actor=0)
    await summon(seance, "client", REQUEST_WAT, actor=1)
    asking = asyncio.create_task(seance.request("server", b"hello", timeout=10))
    while not seance.pending("server"):
        await asyncio.sleep(0.005)
    assert await seance.invoke("server", "serve") == 1
    assert await asking == b"re:hello"
    with pytest.raises(RequestTimeout, match="did not reply"):
        await seance.request("server", b"late", timeout=0.05)
    assert await seance.invoke("server", "serve") == 0  # nobody waits for that one any more

    request_id = await seance.invoke("client", "ask", "server")  # guest to guest
    assert request_id > 0
    assert await seance.invoke("server", "serve") == 1  # its reply goes back to the client
    assert await seance.invoke("client", "collect") == request_id


# ---- shared state -------------------------------------------------------------------------------


async def test_state_shared_between_spirits(seance: AnySeance) -> None:
    await summon(seance, "writer", STATE_WAT, actor=0)
    await summon(seance, "reader", STATE_WAT, actor=1)
    assert await seance.invoke("writer", "set", "greeting", "hello") == 0
    assert seance.state["greeting"] == b"hello"
    assert await seance.invoke("reader", "get", "greeting", 64) == 5
    assert await string_result(seance, "reader", "value") == "hello"
    assert await seance.invoke("reader", "get", "missing", 64) == -1
    assert await seance.invoke("reader", "get", "greeting", 4) == -2

    seance.state["k"] = b"v"
    seance.state["text"] = "héllo"
    assert await seance.invoke("reader", "get", "text", 16) == len("héllo".encode())
    assert await string_result(seance, "reader", "value") == "héllo"
    assert set(seance.state) == {"greeting", "k", "text"} and len(seance.state) == 3
    assert "k" in seance.state and seance.state.get("nope") is None
    del seance.state["k"]
    assert await seance.invoke("reader", "get", "k", 16) == -1
    with pytest.raises(KeyError):
        del seance.state["k"]
    seance.state.of("reader")["own"] = b"1"
    assert "own" not in seance.state and seance.state.of("reader")["own"] == b"1"


async def test_state_is_per_seance(make: Callable[..., AnySeance]) -> None:
    one, two = make(), make()
    await summon(one, "w", STATE_WAT, actor=0)
    await summon(two, "r", STATE_WAT, actor=1)
    await one.invoke("w", "set", "k", "1")
    assert await two.invoke("r", "get", "k", 16) == -1
    assert "k" not in two.state and one.state["k"] == b"1"


async def test_state_backend_made_in_the_hub(backend: RayBackend) -> None:
    quota = RaySeance(backend, state=lambda: MemoryBackend(quota_keys=1), namespace="app")
    async with quota as s:
        assert s.state.namespace == "app"
        await s.summon("w", STATE_WAT)
        assert await s.invoke("w", "set", "a", "1") == 0
        assert await s.invoke("w", "set", "b", "2") == -3  # the quota, through the hub
        with pytest.raises(StateQuotaError, match="full"):
            s.state["c"] = b"3"
    with pytest.raises(TypeError, match="callable"):
        RaySeance(backend, state=MemoryBackend())  # type: ignore[arg-type]


# ---- what only the Ray backend has ---------------------------------------------------------------


async def test_options_that_cannot_cross(backend: RayBackend) -> None:
    async with RaySeance(backend) as s:
        with pytest.raises(SeanceError, match=r"stdout=.*cannot cross"):
            await s.summon("hello", SPIRITS / "hello_world.wasm", stdout=print)
        with pytest.raises(SeanceError, match=r"on_effect=.*cannot cross"):
            await s.summon("calc", CALCULATOR, on_effect=lambda *a: 0)
        with pytest.raises(SeanceError, match="by name"):
            await s.summon("calc", CALCULATOR, loas=[object()])  # type: ignore[list-item]
        with pytest.raises(SeanceError, match="actor="):
            await s.summon("calc", CALCULATOR, actor=7)
        with pytest.raises(SeanceError, match="manifest"):
            await s.summon("app", "spirit.toml")
        with pytest.raises(ValueError, match="mode"):
            await s.summon("calc", CALCULATOR, mode="fast")  # type: ignore[arg-type]
        assert len(s) == 0
        await s.summon("calc", CALCULATOR, loas=["core"], timeout=1.0, cache=False)
        assert await s.invoke("calc", "add", 1, 2) == 3


async def test_loas_of_your_own_through_a_registry_made_there(backend: RayBackend) -> None:
    def registry() -> Any:  # runs in each host actor (pickled by value: a local function)
        from vudo_runtime import Loa, LoaRegistry

        made = LoaRegistry()
        made.register(Loa(name="mine", provides=lambda ctx: {"double": lambda x: 2 * x}))
        return made

    double = b"""(module
      (import "loa" "double" (func $double (param i64) (result i64)))
      (func (export "double") (param i64) (result i64) (call $double (local.get 0))))"""
    async with RaySeance(backend, registry=registry) as s:
        await s.summon("d", double, loas=["core", "mine"])
        assert await s.invoke("d", "double", 21) == 42


async def test_links_and_ghosts_stay_on_one_actor(backend: RayBackend) -> None:
    async with RaySeance(backend) as s:
        await s.summon("calc", CALCULATOR, actor=1)
        app = await s.summon("app", APP_WAT, links={"math": "calc"})
        assert app.actor == 1 and await s.invoke("app", "add3", 1, 2, 3) == 6
        with pytest.raises(SeanceError, match="no such Spirit"):
            await s.summon("bad", APP_WAT, links={"math": "nope"})
        ghost = Ghost(parts={"calc": CALCULATOR, "app": APP_WAT}, links={"app": {"math": "calc"}})
        entry = await s.summon("g", ghost, actor=0)
        assert entry.name == "g.app" and s.placement["g.calc"] == s.placement["g.app"] == 0
        assert await entry.call("add3", 4, 5, 6) == 15


async def test_cancel_and_interrupt_stop_the_guest(backend: RayBackend) -> None:
    async with RaySeance(backend) as s:
        await s.summon("loops", LOOPS, mode="thread")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await s.invoke("loops", "spin")
        start = time.perf_counter()
        assert await s.invoke("loops", "fib", 10) == 55  # not stuck behind the spin
        assert time.perf_counter() - start < 5
        spinning = asyncio.create_task(s.invoke("loops", "spin"))
        while not await s.interrupt("loops"):
            await asyncio.sleep(0.01)
        with pytest.raises(SpiritTrap, match="interrupt"):
            await spinning


async def test_spirits_on_two_actors_run_in_two_processes(backend: RayBackend) -> None:
    assert len(set(backend.pids)) == 3  # two host actors and the hub
    async with RaySeance(backend) as s:
        await s.summon("a", LOOPS, actor=0)
        await s.summon("b", LOOPS, actor=1)
        n = 2 * 10**7
        a, b = await asyncio.gather(s.invoke("a", "burn", n), s.invoke("b", "burn", n))
        assert a == b == burn_expected(n)


def test_import_needs_no_ray_and_a_clear_error_without_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"  # as if Ray were not installed
        "import vudo_runtime, vudo_runtime.ray_backend as rb\n"
        "from vudo_runtime import VudoError\n"
        "try:\n"
        "    rb.RayBackend()\n"
        "except VudoError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'vudo-runtime[ray]'" in result.stdout
    plain = subprocess.run(
        [sys.executable, "-c", "import vudo_runtime, sys; print('ray' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert plain.stdout.strip() == "False"
