"""The instance manager: reused instances are reset, and show nothing of their last user."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import wasmtime
from conftest import COUNTER

from vudo_runtime import (
    HostFunction,
    Loa,
    LoaRegistry,
    MemoryClosedError,
    Seance,
    Spirit,
    SpiritClosedError,
    SpiritTrap,
    VudoError,
    WasmSignature,
)
from vudo_runtime.instances import InstanceManager

# State of every kind a reset must undo: memory (data segment and heap), an unexported
# mutable global, a funcref table, and a host import that sees which Spirit calls it.
STATEFUL_WAT = """
(module
  (import "env" "whoami" (func $whoami (result i32)))
  (memory (export "memory") 1 4)
  (data (i32.const 0) "fresh")
  (global $hidden (mut i32) (i32.const 7))
  (global $wide (mut i64) (i64.const 1099511627776))
  (table $t 2 funcref)
  (elem (i32.const 0) $one $two)
  (type $ret (func (result i32)))
  (func $one (result i32) (i32.const 1))
  (func $two (result i32) (i32.const 2))
  (func (export "dirty")
    (i32.store8 (i32.const 0) (i32.const 0x58))
    (i32.store (i32.const 40000) (i32.const -1))
    (global.set $hidden (i32.const 99))
    (global.set $wide (i64.const -5))
    (table.set $t (i32.const 0) (ref.func $two)))
  (func (export "hidden") (result i32) (global.get $hidden))
  (func (export "wide") (result i64) (global.get $wide))
  (func (export "slot0") (result i32) (call_indirect $t (type $ret) (i32.const 0)))
  (func (export "byte") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "grow") (result i32) (memory.grow (i32.const 1)))
  (func (export "boom") unreachable)
  (func (export "who") (result i32) (call $whoami))
)
"""

PASSIVE_WAT = """
(module
  (memory (export "memory") 1)
  (data $d "abc")
  (func (export "init") (memory.init $d (i32.const 0) (i32.const 0) (i32.const 3)) (data.drop $d))
  (func (export "byte") (result i32) (i32.load8_u (i32.const 0)))
)
"""


def _whoami_loa(seen: list[str]) -> Loa:
    def provides(ctx: Any) -> dict[str, Any]:
        def whoami() -> int:
            seen.append(ctx.spirit_name)
            return len(seen)

        return {"whoami": HostFunction(whoami, signature=WasmSignature((), ("i32",)))}

    return Loa(name="whoami", capabilities=["whoami"], provides=provides)


@pytest.fixture
def stateful() -> Iterator[tuple[bytes, LoaRegistry, list[str]]]:
    seen: list[str] = []
    registry = LoaRegistry([_whoami_loa(seen)])
    yield bytes(wasmtime.wat2wasm(STATEFUL_WAT)), registry, seen


def _load(wasm: bytes, registry: LoaRegistry, name: str, **kw: Any) -> Spirit:
    return Spirit.load_sync(wasm, name=name, loas=["whoami"], registry=registry, **kw)


def _manager(spirit: Spirit) -> InstanceManager:
    manager = spirit.instance.manager
    assert manager is not None
    return manager


def _memory_bytes(spirit: Spirit) -> bytes:
    memory = spirit.memory
    assert memory is not None
    return memory.read_bytes(0, memory.size)


def test_a_reused_instance_shows_nothing_of_its_last_user(
    stateful: tuple[bytes, LoaRegistry, list[str]],
) -> None:
    wasm, registry, seen = stateful
    first = _load(wasm, registry, "first")
    manager = _manager(first)
    fresh = _memory_bytes(first)
    instance = first.instance
    assert first.call_sync("who") == 1
    first.call_sync("dirty")
    assert (first.call_sync("hidden"), first.call_sync("wide"), first.call_sync("slot0")) == (
        99,
        -5,
        2,
    )
    assert first.memory is not None
    first.memory.write_bytes(20000, b"secret of the first user")
    assert _memory_bytes(first) != fresh
    reused_before = manager.reused
    first.close()

    second = _load(wasm, registry, "second")
    assert second.instance is instance and manager.reused == reused_before + 1  # reused...
    assert _memory_bytes(second) == fresh  # ...with the memory image of a fresh instance
    assert b"secret" not in _memory_bytes(second)
    assert second.call_sync("byte", 0) == ord("f") and second.call_sync("byte", 40000) == 0
    assert second.call_sync("hidden") == 7  # an unexported global, restored
    assert second.call_sync("wide") == 1 << 40
    assert second.call_sync("slot0") == 1  # the table, restored
    assert second.call_sync("who") == 2 and seen == ["first", "second"]  # its own context
    second.close()


def test_the_last_user_cannot_reach_the_reused_instance(
    stateful: tuple[bytes, LoaRegistry, list[str]],
) -> None:
    wasm, registry, _ = stateful
    first = _load(wasm, registry, "first")
    memory = first.memory
    assert memory is not None
    first.call_sync("hidden")  # its fast caller is bound
    instance = first.instance
    first.close()
    second = _load(wasm, registry, "second")
    assert second.instance is instance
    second.call_sync("dirty")
    with pytest.raises(SpiritClosedError, match="'first' is closed"):
        first.call_sync("hidden")
    with pytest.raises(SpiritClosedError):
        asyncio.run(first.call("hidden"))
    with pytest.raises(MemoryClosedError):
        memory.read_bytes(0, 8)
    assert second.call_sync("hidden") == 99  # untouched by the closed Spirit
    assert first.interrupt() is False  # and never interrupted through the closed one
    with pytest.raises(SpiritClosedError):
        first.instance  # noqa: B018
    second.close()


def test_a_host_context_kept_past_its_spirit_does_not_reach_the_next_one() -> None:
    contexts: list[Any] = []

    def provides(ctx: Any) -> dict[str, Any]:
        def whoami() -> int:
            contexts.append(ctx)
            return 0

        return {"whoami": HostFunction(whoami, signature=WasmSignature((), ("i32",)))}

    registry = LoaRegistry([Loa(name="whoami", capabilities=["whoami"], provides=provides)])
    wasm = bytes(wasmtime.wat2wasm(STATEFUL_WAT))
    first = _load(wasm, registry, "first")
    first.call_sync("who")
    first.close()
    second = _load(wasm, registry, "second")
    old = contexts[0]
    assert old.spirit_name == "first"
    with pytest.raises(VudoError):
        old.memory  # noqa: B018 - the first Spirit is gone; its context does not see the second
    second.call_sync("who")
    assert contexts[1].spirit is second
    second.close()


@pytest.mark.parametrize(
    "spoil", ["trap", "grow", "view"], ids=["trapped", "grew-its-memory", "handed-out-a-view"]
)
def test_an_instance_a_reset_cannot_undo_is_discarded(
    stateful: tuple[bytes, LoaRegistry, list[str]], spoil: str
) -> None:
    wasm, registry, _ = stateful
    first = _load(wasm, registry, "first")
    manager = _manager(first)
    instance = first.instance
    if spoil == "trap":
        with pytest.raises(SpiritTrap):
            first.call_sync("boom")
    elif spoil == "grow":
        assert first.call_sync("grow") == 1
    else:
        assert first.memory is not None
        first.memory.view(0, 8)
    discarded = manager.discarded
    first.close()
    assert manager.discarded == discarded + 1
    second = _load(wasm, registry, "second")
    assert second.instance is not instance
    assert second.call_sync("byte", 0) == ord("f")
    second.close()


def test_a_module_with_passive_segments_is_never_reused() -> None:
    wasm = bytes(wasmtime.wat2wasm(PASSIVE_WAT))
    first = Spirit.load_sync(wasm)
    manager = _manager(first)
    assert not manager.resettable
    assert manager.state is not None and "passive data" in manager.state.why
    first.call_sync("init")  # data.drop: no reset could bring the segment back
    instance = first.instance
    first.close()
    second = Spirit.load_sync(wasm)
    assert second.instance is not instance
    second.call_sync("init")  # a fresh instance still has its segment
    assert second.call_sync("byte") == ord("a")
    second.close()


def test_a_reused_instance_gets_the_whole_fuel_budget() -> None:
    wasm = COUNTER.read_bytes()
    first = Spirit.load_sync(wasm, fuel=10_000)
    ptr = first.call_sync("new_Counter", 1)
    first.call_sync("Counter.increment", ptr)
    instance = first.instance
    first.close()
    second = Spirit.load_sync(wasm, fuel=10_000)
    assert second.instance is instance
    assert second.instance.store.get_fuel() == 10_000
    assert second.call_sync("new_Counter", 1) == ptr  # the same heap as a fresh instance
    second.close()


def test_seance_members_summoned_again_start_fresh() -> None:
    async def main() -> None:
        async with Seance() as seance:
            spirit = await seance.summon("c", COUNTER)
            ptr = await seance.invoke("c", "new_Counter", 41)
            assert await seance.invoke("c", "Counter.increment", ptr) == 42
            instance = spirit.instance
            await seance.release("c")
            again = await seance.summon("c", COUNTER)
            assert again.instance is instance
            assert await seance.invoke("c", "new_Counter", 0) == ptr  # the heap was reset
            assert await seance.invoke("c", "Counter.get_value", ptr) == 0

    asyncio.run(main())


def test_threads_loading_and_closing_one_module_each_see_a_fresh_instance() -> None:
    wasm = COUNTER.read_bytes()
    probe = Spirit.load_sync(wasm)
    first_ptr = probe.call_sync("new_Counter", 0)
    probe.close()
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(200):
                spirit = Spirit.load_sync(wasm)
                ptr = spirit.call_sync("new_Counter", seed)
                assert ptr == first_ptr, "a heap pointer left by another user"
                assert spirit.call_sync("Counter.increment", ptr) == seed + 1
                if i % 3 == 0:
                    spirit.call_sync("new_Counter", 5)  # dirty the heap some more
                spirit.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _no_cycle_holds(make: Callable[[], Spirit]) -> None:
    gc.collect()
    gc.disable()
    try:
        spirit = make()
        ref = weakref.ref(spirit)
        del spirit
        assert ref() is None, "the Spirit is held by a reference cycle"
    finally:
        gc.enable()


def test_a_dropped_spirit_is_freed_without_the_garbage_collector(
    stateful: tuple[bytes, LoaRegistry, list[str]],
) -> None:
    wasm, registry, _ = stateful

    def used() -> Spirit:
        spirit = _load(wasm, registry, "used")
        spirit.call_sync("who")  # host bindings built
        spirit.call_sync("byte", 0)  # a fast caller built
        assert spirit.memory is not None
        spirit.memory.write_string("x")  # a MemoryManager made, its host heap used
        with pytest.raises(Exception, match="argument"):
            spirit.call_sync("byte", "not an int", 2)
        return spirit

    _no_cycle_holds(used)
    _no_cycle_holds(lambda: Spirit.load_sync(COUNTER.read_bytes()))


def test_a_seance_finds_its_manager_again_only_while_nothing_changed() -> None:
    from vudo_runtime.cache import clear_memory_cache

    wasm = COUNTER.read_bytes()

    async def main() -> None:
        registry = LoaRegistry()
        async with Seance(registry) as seance:
            first = (await seance.summon("c", wasm)).instance.manager
            await seance.release("c")
            assert (await seance.summon("c", wasm)).instance.manager is first  # the fast way
            await seance.release("c")
            clear_memory_cache()  # as a fresh process: compiled again, a new manager
            second = (await seance.summon("c", wasm)).instance.manager
            assert second is not first
            await seance.release("c")
            registry.unregister("state")  # the name "state" now means another Loa
            registry.register(Loa(name="state", provides=lambda ctx: {}))
            third = (await seance.summon("c", wasm)).instance.manager
            assert third is not second

    asyncio.run(main())
