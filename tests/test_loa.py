"""Loa and LoaRegistry: user Loas, typed host functions, grants, linking errors, host calls."""

from __future__ import annotations

import asyncio
import gc
import struct
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo_runtime import (
    CapabilityError,
    GuestPanic,
    HostContext,
    HostFunction,
    Loa,
    LoaRegistry,
    MissingImportError,
    Spirit,
    SpiritLoadError,
    SpiritTrap,
    VudoError,
    WasmSignature,
    host_function,
)
from vudo_runtime.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "host_functions.py"


def wat(text: str) -> bytes:
    return text.encode()


def load(text: str, **options: Any) -> Spirit:
    return Spirit.load_sync(wat(text), **options)


def trap(spirit: Spirit, fn: str, *args: Any) -> SpiritTrap:
    with pytest.raises(SpiritTrap) as info:
        spirit.call_sync(fn, *args)
    return info.value


# ---- LoaRegistry --------------------------------------------------------------------------


def _mine(provides: Any = None) -> Loa:
    return Loa(
        name="mine",
        version="2.1.0",
        capabilities=["double"],
        provides=provides or (lambda ctx: {}),
    )


def test_registry_starts_with_the_builtins() -> None:
    registry = LoaRegistry()
    assert registry.names() == ["core", "messaging", "state", "wasi"]
    assert len(registry) == 4
    assert "core" in registry and "mine" not in registry
    assert [loa.name for loa in registry] == registry.names()
    assert registry.get("core").version == "0.1.0"
    assert repr(registry) == "LoaRegistry(['core', 'messaging', 'state', 'wasi'])"


def test_registry_register_get_unregister() -> None:
    registry = LoaRegistry()
    mine = _mine()
    assert registry.register(mine) is mine
    assert "mine" in registry and len(registry) == 5
    assert registry.get("mine") is mine
    assert registry.names()[-1] == "mine"
    registry.unregister("mine")
    assert "mine" not in registry and len(registry) == 4
    registry.unregister("state")  # built-ins other than core may go
    assert registry.names() == ["core", "messaging", "wasi"]


def test_registry_errors() -> None:
    registry = LoaRegistry([_mine()])
    with pytest.raises(VudoError, match="'mine' is already registered"):
        registry.register(_mine())
    with pytest.raises(VudoError, match="already registered"):
        registry.register(Loa(name="core", provides=lambda ctx: {}))
    with pytest.raises(VudoError, match="core Loa cannot be unregistered"):
        registry.unregister("core")
    with pytest.raises(KeyError, match="no Loa named 'nope'"):
        registry.unregister("nope")
    with pytest.raises(KeyError, match="registered: core, messaging, state, wasi, mine"):
        registry.get("nope")
    with pytest.raises(TypeError, match="expected a Loa"):
        registry.register("mine")  # type: ignore[arg-type]


def test_registries_are_independent_and_the_default_is_shared() -> None:
    a, b = LoaRegistry(), LoaRegistry()
    a.register(_mine())
    assert "mine" in a and "mine" not in b
    assert default_registry() is default_registry()


def test_loa_value() -> None:
    loa = _mine()
    assert loa.capabilities == ("double",)
    with pytest.raises(ValueError, match="non-empty name"):
        Loa(name="", provides=lambda ctx: {})
    with pytest.raises(AttributeError):
        loa.name = "other"  # type: ignore[misc]


def test_loas_differing_only_in_their_functions_are_not_equal() -> None:
    def provides(ctx: HostContext) -> dict[str, Any]:
        return {}

    same = [Loa(name="x", provides=provides), Loa(name="x", provides=provides)]
    assert same[0] == same[1] and hash(same[0]) == hash(same[1])
    assert Loa(name="x", provides=lambda ctx: {}) != Loa(name="x", provides=lambda ctx: {})


# ---- a user Loa ---------------------------------------------------------------------------

DOUBLE = """(module
  (import "loa" "double" (func $double (param i64) (result i64)))
  (func (export "double") (param i64) (result i64) (call $double (local.get 0))))"""


def test_user_loa_granted_by_name_through_a_registry() -> None:
    registry = LoaRegistry()
    registry.register(_mine(provides=lambda ctx: {"double": lambda x: 2 * x}))
    with load(DOUBLE, loas=["core", "mine"], registry=registry) as spirit:
        assert spirit.call_sync("double", 21) == 42
        assert spirit.call_sync("double", -(2**40)) == -(2**41)


def test_user_loa_granted_as_an_object() -> None:
    loa = Loa(name="adhoc", provides=lambda ctx: {"double": lambda x: x + x})
    with load(DOUBLE, loas=[loa]) as spirit:
        assert spirit.call_sync("double", 5) == 10


def test_granting_a_whole_registry() -> None:
    registry = LoaRegistry([_mine(provides=lambda ctx: {"double": lambda x: 3 * x})])
    with load(DOUBLE, loas=registry) as spirit:
        assert spirit.call_sync("double", 5) == 15


def test_granting_an_unregistered_name_fails_clearly() -> None:
    with pytest.raises(SpiritLoadError, match="cannot grant Loa 'ghost': it is not registered"):
        load(DOUBLE, loas=["core", "ghost"], registry=LoaRegistry())


async def test_user_loa_through_the_async_api() -> None:
    loa = Loa(name="adhoc", provides=lambda ctx: {"double": lambda x: x * 2})
    spirit = await Spirit.load(wat(DOUBLE), loas=[loa])
    async with spirit:
        assert await spirit.call("double", 8) == 16


def test_two_loas_with_one_name_keep_their_own_functions() -> None:
    # Linked modules are cached per grant; a Loa with other functions must not reuse a link.
    first = Loa(name="same", version="1", provides=lambda ctx: {"double": lambda x: x + 1})
    second = Loa(name="same", version="1", provides=lambda ctx: {"double": lambda x: x * 100})
    with load(DOUBLE, loas=[first]) as a, load(DOUBLE, loas=[second]) as b:
        assert a.call_sync("double", 5) == 6
        assert b.call_sync("double", 5) == 500


GREET_CTX = """(module
  (import "loa" "hello" (func $hello (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "world")
  (func (export "hello") (result i32) (call $hello (i32.const 0) (i32.const 5))))"""


def test_provides_gets_a_context_per_instance() -> None:
    seen: list[tuple[str, str]] = []

    def provides(ctx: HostContext) -> dict[str, Any]:
        calls = 0

        def hello(ptr: int, length: int) -> int:
            nonlocal calls
            calls += 1
            seen.append((ctx.spirit.name, ctx.read_str(ptr, length)))
            return calls

        return {"hello": hello}

    loa = Loa(name="ctx", provides=provides)
    with load(GREET_CTX, name="a", loas=[loa]) as a, load(GREET_CTX, name="b", loas=[loa]) as b:
        assert [a.call_sync("hello"), a.call_sync("hello"), b.call_sync("hello")] == [1, 2, 1]
        assert b.call_sync("hello") == 2
    assert seen == [("a", "world"), ("a", "world"), ("b", "world"), ("b", "world")]


def test_provides_may_read_the_spirit_name() -> None:
    def provides(ctx: HostContext) -> dict[str, Any]:
        name = ctx.spirit_name  # read eagerly: provides also runs once at link time
        return {"double": lambda x: len(name) * 100 + x}

    loa = Loa(name="named", provides=provides)
    with load(DOUBLE, name="abc", loas=[loa]) as a, load(DOUBLE, name="abcdef", loas=[loa]) as b:
        assert a.call_sync("double", 1) == 301
        assert b.call_sync("double", 1) == 601


def test_provides_touching_instance_state_fails_clearly() -> None:
    def provides(ctx: HostContext) -> dict[str, Any]:
        memory = ctx.memory  # not there at link time
        return {"double": lambda x: memory.size}

    with pytest.raises(SpiritLoadError) as info:
        load(DOUBLE, loas=[Loa(name="eager", provides=provides)])
    assert "Loa 'eager' failed to provide its functions" in str(info.value)
    assert "inside the host functions it returns" in str(info.value)


def test_dropped_spirits_are_freed() -> None:
    loa = Loa(name="adhoc", provides=lambda ctx: {"double": lambda x: x * 2})
    spirit = load(DOUBLE, loas=[loa])
    assert spirit.call_sync("double", 1) == 2
    ref = weakref.ref(spirit)
    del spirit
    gc.collect()
    assert ref() is None


# ---- @host_function -----------------------------------------------------------------------

TYPED = """(module
  (import "loa" "describe"
    (func $describe (param i32 i32 i32 i32 i64 f64 i32) (result i32)))
  (import "loa" "count" (func $count (param i32 i32) (result i64)))
  (import "loa" "reverse" (func $reverse (param i32 i32) (result i32)))
  (import "loa" "is_even" (func $is_even (param i32) (result i32)))
  (import "loa" "half" (func $half (param f32) (result f32)))
  (import "loa" "note" (func $note (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "h\\c3\\a9llo")
  (data (i32.const 16) "\\00\\01\\ff")
  ;; describe("héllo", b"\\00\\01\\ff", n, x, flag)
  (func (export "describe") (param $n i64) (param $x f64) (param $flag i32) (result i32)
    (call $describe (i32.const 0) (i32.const 6) (i32.const 16) (i32.const 3)
      (local.get $n) (local.get $x) (local.get $flag)))
  (func (export "count") (result i64) (call $count (i32.const 0) (i32.const 6)))
  (func (export "reverse") (result i32) (call $reverse (i32.const 16) (i32.const 3)))
  (func (export "is_even") (param i32) (result i32) (call $is_even (local.get 0)))
  (func (export "half") (param f32) (result f32) (call $half (local.get 0)))
  (func (export "note") (call $note (i32.const 0) (i32.const 6))))"""


def _typed_loa(notes: list[str]) -> Loa:
    @host_function
    def describe(text: str, data: bytes, n: int, x: float, flag: bool) -> str:
        return f"{text}|{data.hex()}|{n}|{x}|{flag!r}"

    @host_function
    def count(text: str) -> int:
        return len(text)

    @host_function
    def reverse(data: bytes) -> bytes:
        return data[::-1]

    @host_function
    def is_even(n: int) -> bool:
        return n % 2 == 0

    @host_function
    def half(x: float) -> float:
        return x / 2

    @host_function
    def note(text: str) -> None:
        notes.append(text)

    fns = {
        "describe": describe,
        "count": count,
        "reverse": reverse,
        "is_even": is_even,
        "half": half,
        "note": note,
    }
    return Loa(name="typed", provides=lambda ctx: fns)


def test_host_function_converts_typed_parameters_and_results() -> None:
    notes: list[str] = []
    with load(TYPED, loas=["core", _typed_loa(notes)]) as spirit:
        memory = spirit.memory
        assert memory is not None
        ptr = spirit.call_sync("describe", -7, 2.5, 1)
        assert memory.read_string(ptr) == "héllo|0001ff|-7|2.5|True"
        assert ptr >= memory.host_base  # written into the host region, as a DOL string
        assert memory.read_u32(ptr) == len("héllo|0001ff|-7|2.5|True".encode())
        ptr = spirit.call_sync("describe", 2**40, -0.0, 0)
        assert memory.read_string(ptr) == f"héllo|0001ff|{2**40}|-0.0|False"
        assert spirit.call_sync("count") == 5  # characters, not bytes
        assert memory.read_bytes_prefixed(spirit.call_sync("reverse")) == b"\xff\x01\x00"
        assert [spirit.call_sync("is_even", n) for n in (4, 7, -2)] == [1, 0, 1]
        assert spirit.call_sync("half", 3.0) == 1.5
        assert spirit.call_sync("note") is None
    assert notes == ["héllo"]


def test_host_function_declares_what_it_accepts() -> None:
    @host_function
    def f(text: str, n: int, x: float, flag: bool) -> str:
        return ""

    assert isinstance(f, HostFunction)
    assert f.kinds == ("str", "int", "float", "bool") and f.result == "str"
    assert f.accepts(WasmSignature(("i32", "i32", "i64", "f32", "i32"), ("i32",)))
    assert f.accepts(WasmSignature(("i32", "i32", "i32", "f64", "i32"), ("i32",)))
    assert not f.accepts(WasmSignature(("i32", "i64", "i32", "f64", "i32"), ("i32",)))
    assert not f.accepts(WasmSignature(("i32", "i32", "i32", "f64", "i32"), ()))
    assert not f.accepts(WasmSignature(("i32", "i32", "i32", "f64"), ("i32",)))

    @host_function
    def unannotated(a, b):  # type: ignore[no-untyped-def]
        return a

    assert unannotated.kinds == ("int", "int")
    assert unannotated.accepts(WasmSignature(("i32", "i64"), ()))


def test_host_function_rejects_unsupported_annotations() -> None:
    with pytest.raises(TypeError, match="parameter 'xs' has an unsupported annotation"):

        @host_function
        def bad(xs: list) -> None:  # type: ignore[type-arg]
            pass

    with pytest.raises(TypeError, match="unsupported return annotation"):

        @host_function
        def bad_result() -> list:  # type: ignore[type-arg]
            return []


def test_host_function_with_an_explicit_signature() -> None:
    sig = WasmSignature(("i64",), ("i64",))
    hf = host_function(lambda x: x - 1, signature=sig)
    assert hf.signature == sig
    with load(DOUBLE, loas=[Loa(name="s", provides=lambda ctx: {"double": hf})]) as spirit:
        assert spirit.call_sync("double", 10) == 9
    wrong = host_function(lambda x: x, signature=WasmSignature(("i32",), ("i32",)))
    with pytest.raises(MissingImportError, match="not with signature"):
        load(DOUBLE, loas=[Loa(name="s", provides=lambda ctx: {"double": wrong})])


def test_typed_string_function_needs_exported_memory() -> None:
    @host_function
    def shout(text: str) -> None:
        raise AssertionError("never called")

    no_memory = """(module
      (import "loa" "shout" (func $shout (param i32 i32)))
      (func (export "go") (call $shout (i32.const 0) (i32.const 1))))"""
    with load(no_memory, loas=[Loa(name="t", provides=lambda ctx: {"shout": shout})]) as s:
        err = trap(s, "go")
    assert isinstance(err.__cause__, VudoError)
    assert "exports no memory" in str(err.__cause__)


def test_signature_variants_pick_the_declared_shape() -> None:
    variants = [
        HostFunction(lambda: 1, signature=WasmSignature((), ("i32",))),
        HostFunction(lambda a: a + 100, signature=WasmSignature(("i32",), ("i32",))),
    ]
    loa = Loa(name="v", provides=lambda ctx: {"pick": variants})
    zero = """(module (import "loa" "pick" (func $p (result i32)))
      (func (export "go") (result i32) (call $p)))"""
    one = """(module (import "loa" "pick" (func $p (param i32) (result i32)))
      (func (export "go") (param i32) (result i32) (call $p (local.get 0))))"""
    with load(zero, loas=[loa]) as a, load(one, loas=[loa]) as b:
        assert a.call_sync("go") == 1
        assert b.call_sync("go", 5) == 105


# ---- capability denial and missing imports ------------------------------------------------

SECRET = """(module
  (import "loa" "secret" (func $secret (result i32)))
  (func (export "secret") (result i32) (call $secret)))"""


def test_an_ungranted_loa_is_a_capability_error() -> None:
    registry = LoaRegistry([Loa(name="vault", provides=lambda ctx: {"secret": lambda: 7})])
    with pytest.raises(CapabilityError) as info:
        load(SECRET, name="thief", loas=["core"], registry=registry)
    message = str(info.value)
    assert "Spirit 'thief' needs capabilities it was not granted" in message
    assert "loa.secret: () -> (i32) is provided by Loa 'vault', which is not granted" in message
    assert "loas=['core', 'vault']" in message
    assert isinstance(info.value, SpiritLoadError)
    with load(SECRET, loas=["core", "vault"], registry=registry) as spirit:
        assert spirit.call_sync("secret") == 7


def test_only_listed_capabilities_can_be_imported() -> None:
    """What provides returns beyond the Loa's capabilities stays private to the host."""
    leaky = Loa(
        name="leaky",
        capabilities=["double"],
        provides=lambda ctx: {"double": lambda x: 2 * x, "secret": lambda: 7},
    )
    with pytest.raises(MissingImportError) as info:
        load(SECRET, name="thief", loas=["core", leaky])
    assert info.value.missing == ["loa.secret: () -> (i32)"]
    assert info.value.hints == [
        "Loa 'leaky' provides secret but does not list it in its capabilities,"
        " so Spirits cannot import it"
    ]
    with load(DOUBLE, loas=["core", leaky]) as spirit:  # the listed one still links
        assert spirit.call_sync("double", 21) == 42
    # an ungranted Loa that does not list it is no way in either: granting it cannot help
    registry = LoaRegistry([attrs.evolve(leaky, name="vault")])
    with pytest.raises(MissingImportError, match=r"loa\.secret: \(\) -> \(i32\)"):
        load(SECRET, loas=["core"], registry=registry)


def test_state_is_not_granted_by_default() -> None:
    uses_state = """(module
      (import "loa" "vudo_state_set" (func (param i32 i32 i32 i32) (result i32))))"""
    with pytest.raises(CapabilityError, match="Loa 'state'"):
        load(uses_state)
    load(uses_state, loas=["core", "state"]).close()


def test_missing_imports_are_all_listed_with_signatures_and_hints() -> None:
    text = """(module
      (import "loa" "vudo_print" (func (param i64 i64)))
      (import "env" "nobody_has_this" (func (param f32) (result f64)))
      (import "vudo" "vudo_send" (func (param i32) (result i32)))
      (import "env" "table" (table 1 funcref)))"""
    with pytest.raises(MissingImportError) as info:
        load(text, name="needy")
    err = info.value
    assert err.spirit == "needy"
    assert err.missing == [
        "loa.vudo_print: (i64, i64) -> ()",
        "env.nobody_has_this: (f32) -> (f64)",
        "vudo.vudo_send: (i32) -> (i32)",
        "env.table: table",
    ]
    assert err.hints == [
        "Loa 'core' provides vudo_print but not with signature (i64, i64) -> ()",
        "Loa 'messaging' provides vudo_send but not with signature (i32) -> (i32)",
    ]
    message = str(err)
    assert "Spirit 'needy' has 4 unmet import(s)" in message
    for line in err.missing:
        assert f"  {line}" in message
    assert "hint: Loa 'core' provides vudo_print" in message
    assert "loas=[...]" in message


# ---- host exceptions ----------------------------------------------------------------------

BOOM = """(module
  (import "loa" "boom" (func $boom (param i32) (result i32)))
  (func (export "boom") (param i32) (result i32) (call $boom (local.get 0))))"""


def test_host_exception_is_the_cause_of_the_trap() -> None:
    raised: list[BaseException] = []

    def boom(x: int) -> int:
        if x < 0:
            raised.append(ValueError(f"negative: {x}"))
            raise raised[-1]
        return x + 1

    with load(BOOM, name="b", loas=[Loa(name="b", provides=lambda ctx: {"boom": boom})]) as s:
        err = trap(s, "boom", -3)
        assert err.__cause__ is raised[0]
        assert "ValueError: negative: -3" in str(err)
        assert err.spirit == "b" and err.function == "boom"
        assert s.call_sync("boom", 1) == 2  # still usable, no stale cause
        assert trap(s, "boom", -4).__cause__ is raised[1]


def test_host_exceptions_from_two_threads_stay_apart() -> None:
    def boom(x: int) -> int:
        if x % 2:
            raise ValueError(f"thread {threading.get_ident()} call {x}")
        return x

    loa = Loa(name="b", provides=lambda ctx: {"boom": boom})
    spirits = [load(BOOM, name=f"s{k}", loas=[loa]) for k in range(2)]
    barrier = threading.Barrier(len(spirits))
    problems: list[str] = []

    def run(spirit: Spirit) -> None:
        me = threading.get_ident()
        barrier.wait()
        for i in range(400):
            try:
                result = spirit.call_sync("boom", i)
            except SpiritTrap as err:
                cause = err.__cause__
                if not (i % 2 and isinstance(cause, ValueError)):
                    problems.append(f"{spirit.name} call {i}: unexpected {cause!r}")
                elif str(cause) != f"thread {me} call {i}" or f"call {i}" not in str(err):
                    problems.append(f"{spirit.name} call {i}: got {cause}")
            else:
                if i % 2 or result != i:
                    problems.append(f"{spirit.name} call {i}: returned {result}")

    threads = [threading.Thread(target=run, args=(s,)) for s in spirits]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert problems == []
    for spirit in spirits:
        spirit.close()


UNPRINTABLE = """
import sys
from vudo_runtime import SpiritTrap
from vudo_runtime import Loa
from vudo_runtime import Spirit

class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message")

def boom(x):
    raise Unprintable()

loa = Loa(name="b", provides=lambda ctx: {"boom": boom})
for unchecked in (True, False):
    spirit = Spirit.load_sync(sys.argv[1].encode(), loas=[loa], unchecked=unchecked)
    try:
        spirit.call_sync("boom", 1)
    except SpiritTrap as err:
        assert type(err.__cause__) is Unprintable
        print("trapped", "Unprintable" in err.message)
"""


def test_host_exception_without_a_message_still_traps() -> None:
    # In a child process: this used to return garbage from the trampoline and crash.
    done = subprocess.run(
        [sys.executable, "-c", UNPRINTABLE, BOOM],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["trapped True", "trapped True", ""]
    assert "Exception ignored" not in done.stderr


def test_guest_panic_from_a_user_loa() -> None:
    def boom(x: int) -> int:
        raise GuestPanic(f"refused {x}")

    with load(BOOM, loas=[Loa(name="b", provides=lambda ctx: {"boom": boom})]) as s:
        err = trap(s, "boom", 9)
    assert "refused 9" in err.message
    assert isinstance(err.__cause__, GuestPanic)


# ---- async host functions -----------------------------------------------------------------

ASYNC = """(module
  (import "loa" "fetch" (func $fetch (param i32) (result i32)))
  (import "loa" "label" (func $label (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "item")
  (func (export "fetch") (param i32) (result i32) (call $fetch (local.get 0)))
  (func (export "label") (result i32) (call $label (i32.const 0) (i32.const 4))))"""


def _async_loa(loops: list[asyncio.AbstractEventLoop]) -> Loa:
    async def fetch(x: int) -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.001)
        if x < 0:
            raise KeyError(x)
        return x * 3

    @host_function
    async def label(text: str) -> str:
        await asyncio.sleep(0)
        return f"<{text}>"

    return Loa(name="aio", provides=lambda ctx: {"fetch": fetch, "label": label})


async def test_async_host_function_is_awaited_on_the_callers_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    spirit = await Spirit.load(wat(ASYNC), loas=[_async_loa(loops)])
    async with spirit:
        assert await spirit.call("fetch", 14) == 42
        assert loops == [asyncio.get_running_loop()]
        assert spirit.memory is not None
        assert spirit.memory.read_string(await spirit.call("label")) == "<item>"
        results = await asyncio.gather(*(spirit.call("fetch", i) for i in range(5)))
        assert results == [0, 3, 6, 9, 12]
        with pytest.raises(SpiritTrap) as info:
            await spirit.call("fetch", -1)
        assert isinstance(info.value.__cause__, KeyError)
        # even mode="inline" must not run it on the loop thread
        assert await spirit.call("fetch", 2, mode="inline") == 6


async def test_async_host_function_with_call_sync_inside_a_loop_is_refused() -> None:
    spirit = await Spirit.load(wat(ASYNC), loas=[_async_loa([])])
    with spirit, pytest.raises(VudoError, match=r"await spirit\.call"):
        spirit.call_sync("fetch", 1)


def test_async_host_function_with_call_sync_outside_a_loop_traps_clearly() -> None:
    with load(ASYNC, loas=[_async_loa([])]) as spirit:
        err = trap(spirit, "fetch", 1)
    assert isinstance(err.__cause__, VudoError)
    assert "needs an event loop" in str(err.__cause__)
    assert "await spirit.call(...)" in str(err.__cause__)


def test_async_host_function_after_the_loop_has_stopped_traps_clearly() -> None:
    spirit = load(ASYNC, loas=[_async_loa([])])
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(spirit.call("fetch", 2)) == 6
        outcome: list[BaseException] = []

        def later() -> None:  # the loop is stopped now: nothing would ever run the coroutine
            try:
                spirit.call_sync("fetch", 3)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=later, daemon=True)
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), "call_sync hung waiting for a stopped event loop"
        assert isinstance(outcome[0], SpiritTrap)
        assert "needs an event loop" in str(outcome[0].__cause__)
    finally:
        loop.close()
    with pytest.raises(SpiritTrap, match="needs an event loop"):
        spirit.call_sync("fetch", 4)  # closed loop, same clear error
    spirit.close()


# ---- fast and public host paths agree -----------------------------------------------------

KINDS = """(module
  (import "loa" "i32_add" (func $i32_add (param i32 i32) (result i32)))
  (import "loa" "i64_mul" (func $i64_mul (param i64 i64) (result i64)))
  (import "loa" "f32_half" (func $f32_half (param f32) (result f32)))
  (import "loa" "mix" (func $mix (param i32 i64 f32 f64) (result f64)))
  (import "loa" "multi" (func $multi (param i32 i64) (result i64 i32 f64)))
  (import "loa" "unsigned" (func $unsigned (result i32)))
  (import "loa" "as_i32" (func $as_i32 (param i64) (result i32)))
  (import "loa" "bad_type" (func $bad_type (result i64)))
  (import "loa" "no_float" (func $no_float (result f64)))
  (import "loa" "fail" (func $fail (param i32)))
  (import "loa" "vudo_panic" (func $panic (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "stop")
  (func (export "i32_add") (param i32 i32) (result i32)
    (call $i32_add (local.get 0) (local.get 1)))
  (func (export "i64_mul") (param i64 i64) (result i64)
    (call $i64_mul (local.get 0) (local.get 1)))
  (func (export "f32_half") (param f32) (result f32) (call $f32_half (local.get 0)))
  (func (export "mix") (param i32 i64 f32 f64) (result f64)
    (call $mix (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "multi") (param i32 i64) (result i64 i32 f64)
    (call $multi (local.get 0) (local.get 1)))
  (func (export "unsigned") (result i32) (call $unsigned))
  (func (export "as_i32") (param i64) (result i32) (call $as_i32 (local.get 0)))
  (func (export "bad_type") (result i64) (call $bad_type))
  (func (export "no_float") (result f64) (call $no_float))
  (func (export "fail") (param i32) (call $fail (local.get 0)))
  (func (export "panic") (call $panic (i32.const 0) (i32.const 4))))"""


def _fail(code: int) -> None:
    raise (ValueError if code == 1 else RuntimeError)(f"failure {code}")


KINDS_LOA = Loa(
    name="kinds",
    provides=lambda ctx: {
        "i32_add": lambda a, b: a + b,
        "i64_mul": lambda a, b: a * b,
        "f32_half": lambda x: x / 2,
        "mix": lambda a, b, c, d: a + b + c + d,
        "multi": lambda a, b: (b * 2, a - 1, a / 4),
        "unsigned": lambda: 0xFFFFFFFF,
        "as_i32": lambda x: x,
        "bad_type": lambda: "7",
        "no_float": lambda: None,
        "fail": _fail,
    },
)

_paths: dict[bool, Spirit] = {}


def on_path(unchecked: bool) -> Spirit:
    """One Spirit per host path, shared by the tests below (a Spirit outlives its traps)."""
    if unchecked not in _paths:
        _paths[unchecked] = load(KINDS, name="kinds", loas=["core", KINDS_LOA], unchecked=unchecked)
    return _paths[unchecked]


def f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


CASES: list[tuple[str, tuple[Any, ...], Any]] = [
    ("i32_add", (2, 3), 5),
    ("i32_add", (-5, 2), -3),
    ("i32_add", (2**31 - 1, 0), 2**31 - 1),
    ("i32_add", (-(2**31), 0), -(2**31)),
    ("i32_add", (0xFFFFFFFF, 0), -1),  # an unsigned spelling goes in as -1
    ("i64_mul", (2**31, 2**31), 2**62),
    ("i64_mul", (-(2**62), 2), -(2**63)),
    ("f32_half", (3.0,), 1.5),
    ("f32_half", (0.1,), f32(f32(0.1) / 2)),
    ("mix", (1, 2**40, 0.5, 0.25), 1 + 2**40 + 0.75),
    ("mix", (-1, -2, -0.5, -0.25), -3.75),
    ("multi", (7, 2**33), (2**34, 6, 1.75)),
    ("multi", (1 - 2**31, -1), (-2, -(2**31), (1 - 2**31) / 4)),
    ("unsigned", (), -1),
    ("as_i32", (2**31,), -(2**31)),  # unsigned spelling of the result
    ("as_i32", (-(2**31),), -(2**31)),
]


@pytest.mark.parametrize("unchecked", [True, False], ids=["fast", "public"])
@pytest.mark.parametrize(("fn", "args", "expected"), CASES)
def test_host_paths_give_the_same_results(
    unchecked: bool, fn: str, args: tuple[Any, ...], expected: Any
) -> None:
    assert on_path(unchecked).call_sync(fn, *args) == expected


FAILURES: list[tuple[str, tuple[Any, ...], type[BaseException], str]] = [
    ("fail", (1,), ValueError, "failure 1"),
    ("fail", (2,), RuntimeError, "failure 2"),
    ("i32_add", (2**31, 2**31), ValueError, "host function result 0 (i32) out of range"),
    ("as_i32", (2**32,), ValueError, "out of range: 4294967296"),
    ("as_i32", (-(2**31) - 1,), ValueError, "out of range: -2147483649"),
    ("i64_mul", (2**62, 8), ValueError, "host function result 0 (i64) out of range"),
    ("bad_type", (), TypeError, "must be int for i64, got '7'"),
    ("no_float", (), TypeError, "must be float for f64, got None"),
    ("panic", (), GuestPanic, "panic: stop"),
]


@pytest.mark.parametrize(("fn", "args", "cause", "text"), FAILURES)
def test_host_paths_fail_the_same_way(
    fn: str, args: tuple[Any, ...], cause: type[BaseException], text: str
) -> None:
    seen = []
    for unchecked in (True, False):
        err = trap(on_path(unchecked), fn, *args)
        assert type(err) is SpiritTrap
        assert type(err.__cause__) is cause
        assert text in str(err.__cause__)
        assert text in str(err)
        seen.append((type(err), type(err.__cause__), str(err.__cause__), err.function))
    assert seen[0] == seen[1]


def test_host_paths_give_the_same_trap_message() -> None:
    messages = {trap(on_path(unchecked), "panic").message for unchecked in (True, False)}
    assert messages == {"panic: stop"}


@settings(max_examples=60, deadline=None)
@given(
    a=st.integers(-(2**31), 2**31 - 1),
    b=st.integers(-(2**63), 2**63 - 1),
    c=st.floats(width=32, allow_nan=False, allow_infinity=False),
    d=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
)
def test_host_paths_agree_on_any_values(a: int, b: int, c: float, d: float) -> None:
    fast, public = on_path(True), on_path(False)
    calls = [("mix", (a, b, c, d)), ("multi", (max(a, 1 - 2**31), b // 4)), ("f32_half", (c,))]
    for fn, args in calls:
        assert fast.call_sync(fn, *args) == public.call_sync(fn, *args)
    assert fast.call_sync("i64_mul", b, 1) == public.call_sync("i64_mul", b, 1) == b
    assert fast.call_sync("as_i32", a) == public.call_sync("as_i32", a) == a


# ---- the example --------------------------------------------------------------------------


def test_host_functions_example_runs_from_anywhere(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Hello, Python! Greetings from the host.",
        "welcome() returned 'Hello, Python! Greetings from the host.'",
        "scale(2.5, 4) = 10.0",
        "hello_world printed 'vudo'",
    ]
