"""The built-in Loas through the ``abi_probe`` Spirit: every core function, messaging variants."""

from __future__ import annotations

import io
import logging
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from vudo_runtime import (
    Effect,
    GuestPanic,
    HostFunction,
    Loa,
    MemoryAccessError,
    Spirit,
    SpiritTrap,
)
from vudo_runtime.loas import CORE, MessageBus

SPIRITS = Path(__file__).resolve().parent.parent / "spirits"
PROBE = SPIRITS / "abi_probe.wasm"
LOGGER = "vudo.spirit.abi_probe"


@pytest.fixture
def output() -> list[str]:
    return []


@pytest.fixture
def effects() -> list[Effect]:
    return []


@pytest.fixture
def probe(output: list[str], effects: list[Effect]) -> Iterator[Spirit]:
    spirit = Spirit.load_sync(PROBE, stdout=output.append, on_effect=effects.append)
    yield spirit
    spirit.close()


def trap(spirit: Spirit, fn: str, *args: Any) -> SpiritTrap:
    with pytest.raises(SpiritTrap) as info:
        spirit.call_sync(fn, *args)
    return info.value


# ---- the probe itself ---------------------------------------------------------------------


def test_probe_imports_every_core_function_under_all_three_module_names() -> None:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(PROBE))
    imports = {(imp.module, imp.name) for imp in module.imports}
    assert {name for _, name in imports} == set(CORE.capabilities)
    assert {mod for mod, _ in imports} == {"loa", "vudo", "env"}
    assert len(imports) == len(CORE.capabilities) == 19


def test_probe_dol_declares_its_imports_and_exports() -> None:
    from vudo_runtime.codegen.parser import parse_dol_file

    dol = parse_dol_file(SPIRITS / "abi_probe.dol")
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(PROBE))
    assert sorted(f.name for f in dol.host_imports) == sorted(i.name for i in module.imports)
    assert all(f.is_sex for f in dol.host_imports)
    exported = sorted(e.name for e in module.exports if e.name != "memory")
    assert sorted(f.export_name for f in dol.exports) == exported


def _spy_core(calls: list[str]) -> Loa:
    """A Loa named ``core`` that counts calls, then runs the real core function."""

    def provides(ctx: Any) -> dict[str, HostFunction]:
        real = CORE.provides(ctx)
        spied = {}
        for name, hf in real.items():

            def spy(*args: Any, _name: str = name, _fn: Callable[..., Any] = hf.fn) -> Any:
                calls.append(_name)
                return _fn(*args)

            spied[name] = HostFunction(spy, signature=hf.signature)
        return spied

    return Loa(name="core", version=CORE.version, capabilities=CORE.capabilities, provides=provides)


def test_run_all_reaches_every_core_function_that_does_not_trap(
    output: list[str], effects: list[Effect]
) -> None:
    calls: list[str] = []
    spirit = Spirit.load_sync(
        PROBE, loas=[_spy_core(calls)], stdout=output.append, on_effect=effects.append
    )
    assert spirit.call_sync("run_all") == 1
    trapping = {"vudo_panic", "vudo_abort"}
    assert set(calls) == set(CORE.capabilities) - trapping
    assert output == ["hello from abi_probe\n", "run_all"]
    assert [e.kind for e in effects] == [1, "subscribe"]
    for fn in ("panic", "abort"):
        with pytest.raises(SpiritTrap):
            spirit.call_sync(fn, *(("x",) if fn == "panic" else (1,)))
    assert set(calls) == set(CORE.capabilities)


# ---- text ---------------------------------------------------------------------------------


def test_print_and_println_to_a_callable(probe: Spirit, output: list[str]) -> None:
    probe.call_sync("greet")
    probe.call_sync("print", "héllo ")
    probe.call_sync("println", "wörld")
    probe.call_sync("print", "")
    assert output == ["hello from abi_probe\n", "héllo ", "wörld\n", ""]


def test_print_and_println_to_a_file_object() -> None:
    buffer = io.StringIO()
    with Spirit.load_sync(PROBE, stdout=buffer) as spirit:
        spirit.call_sync("print", "a")
        spirit.call_sync("println", "b")
        spirit.call_sync("greet")
    assert buffer.getvalue() == "ab\nhello from abi_probe\n"


def test_print_defaults_to_sys_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with Spirit.load_sync(PROBE) as spirit:
        spirit.call_sync("println", "to stdout")
    assert capsys.readouterr().out == "to stdout\n"


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (0, logging.DEBUG),
        (1, logging.INFO),
        (2, logging.WARNING),
        (3, logging.ERROR),
        (9, logging.INFO),  # unknown levels log at INFO
    ],
)
def test_log_levels(
    probe: Spirit, caplog: pytest.LogCaptureFixture, level: int, expected: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="vudo.spirit")
    probe.call_sync("log", level, f"level {level}")
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == expected
    assert record.getMessage() == f"level {level}"


def test_error_and_debug_log(probe: Spirit, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vudo.spirit")
    probe.call_sync("error", "it broke")
    probe.call_sync("debug", "details ünïcode")
    got = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert got == [
        (LOGGER, logging.ERROR, "it broke"),
        (LOGGER, logging.DEBUG, "details ünïcode"),
    ]


def test_logger_is_named_after_the_spirit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vudo.spirit")
    with Spirit.load_sync(PROBE, name="probe-7") as spirit:
        spirit.call_sync("log", 1, "named")
    assert [r.name for r in caplog.records] == ["vudo.spirit.probe-7"]


# ---- host allocation ----------------------------------------------------------------------


def test_alloc_returns_a_pointer_in_the_host_region(probe: Spirit) -> None:
    memory = probe.memory
    assert memory is not None
    before = memory.allocated
    ptr = probe.call_sync("host_alloc", 100)
    assert memory.host_base >= 65536
    assert ptr >= memory.host_base
    assert ptr + 100 <= memory.size
    assert memory.allocated >= before + 100
    # the guest can use it, and the host sees what it wrote
    probe.call_sync("fill", ptr, 0x5A, 100)
    assert memory.read_bytes(ptr, 100) == b"\x5a" * 100
    probe.call_sync("host_free", ptr, 100)
    assert memory.allocated == before


def test_realloc_keeps_the_bytes(probe: Spirit) -> None:
    memory = probe.memory
    assert memory is not None
    ptr = probe.call_sync("host_alloc", 16)
    memory.write_bytes(ptr, bytes(range(16)))
    bigger = probe.call_sync("host_realloc", ptr, 16, 4096)
    assert bigger >= memory.host_base
    assert memory.read_bytes(bigger, 16) == bytes(range(16))
    smaller = probe.call_sync("host_realloc", bigger, 4096, 8)
    assert memory.read_bytes(smaller, 8) == bytes(range(8))
    probe.call_sync("host_free", smaller, 8)
    # realloc of a null pointer is a plain allocation
    fresh = probe.call_sync("host_realloc", 0, 0, 32)
    assert fresh >= memory.host_base
    probe.call_sync("host_free", fresh, 32)
    assert memory.allocated == 0


@pytest.mark.parametrize(
    "bad",
    [1234, 0xFFFFFF00, -8],  # in bounds but not allocated, out of bounds, a negative i32
    ids=["unknown", "out-of-bounds", "negative"],
)
def test_realloc_of_a_bad_pointer_traps_and_leaks_nothing(probe: Spirit, bad: int) -> None:
    memory = probe.memory
    assert memory is not None
    first = probe.call_sync("host_alloc", 16)
    probe.call_sync("host_free", first, 16)
    for _ in range(3):
        err = trap(probe, "host_realloc", bad, 16, 32)
        assert isinstance(err.__cause__, MemoryAccessError)
        assert f"vudo_realloc({bad & 0xFFFFFFFF:#x}, 16, 32)" in str(err)
        assert "nothing was reallocated" in str(err)
        assert memory.allocated == 0
    assert probe.call_sync("host_alloc", 16) == first  # the trapped calls took nothing


def test_realloc_sizes_are_unsigned(probe: Spirit) -> None:
    memory = probe.memory
    assert memory is not None
    ptr = probe.call_sync("host_alloc", 16)
    memory.write_bytes(ptr, b"0123456789abcdef")
    # -8 is 0xFFFFFFF8 bytes as the ABI reads an i32 size: too big, not a ValueError
    err = trap(probe, "host_realloc", ptr, 16, -8)
    assert isinstance(err.__cause__, MemoryAccessError)
    assert "cannot allocate 4294967288 bytes" in str(err)
    assert memory.read_bytes(ptr, 16) == b"0123456789abcdef"  # the old block is untouched
    bigger = probe.call_sync("host_realloc", ptr, -1, 32)  # old: 0xFFFFFFFF, copy min(old, new)
    assert memory.read_bytes(bigger, 16) == b"0123456789abcdef"
    probe.call_sync("host_free", bigger, 32)
    assert memory.allocated == 0


def test_alloc_grows_memory_when_needed(probe: Spirit) -> None:
    memory = probe.memory
    assert memory is not None
    pages = memory.pages
    ptr = probe.call_sync("host_alloc", 3 * 65536)
    assert memory.pages > pages
    assert ptr + 3 * 65536 <= memory.size


def test_free_of_an_unknown_pointer_traps(probe: Spirit) -> None:
    err = trap(probe, "host_free", 1234, 8)
    assert isinstance(err.__cause__, MemoryAccessError)
    assert "not a live allocation" in str(err)


# ---- time and randomness ------------------------------------------------------------------


def test_now_is_wall_clock_milliseconds(probe: Spirit) -> None:
    before = time.time() * 1000
    now = probe.call_sync("now")
    after = time.time() * 1000
    assert isinstance(now, int)
    assert before - 1 <= now <= after + 1


def test_monotonic_now_increases(probe: Spirit) -> None:
    first = probe.call_sync("monotonic")
    time.sleep(0.002)
    second = probe.call_sync("monotonic")
    assert second - first >= 1_000_000  # nanoseconds
    assert abs(second - time.monotonic_ns()) < 1_000_000_000


def test_sleep_sleeps(probe: Spirit) -> None:
    start = time.perf_counter()
    probe.call_sync("sleep", 30)
    assert time.perf_counter() - start >= 0.028
    start = time.perf_counter()
    probe.call_sync("sleep", -5)  # negative: no sleep, no error
    assert time.perf_counter() - start < 0.5


def test_random_is_in_unit_interval(probe: Spirit) -> None:
    values = [probe.call_sync("random") for _ in range(200)]
    assert all(isinstance(v, float) and 0.0 <= v < 1.0 for v in values)
    assert len(set(values)) > 190


def test_random_bytes_fill_memory(probe: Spirit) -> None:
    memory = probe.memory
    assert memory is not None
    ptr = probe.call_sync("host_alloc", 64)
    memory.write_bytes(ptr, bytes(64))
    probe.call_sync("random_bytes", ptr, 32)
    first = memory.read_bytes(ptr, 32)
    assert first != bytes(32)
    assert memory.read_bytes(ptr + 32, 32) == bytes(32)  # nothing past the range
    probe.call_sync("random_bytes", ptr, 32)
    assert memory.read_bytes(ptr, 32) != first


# ---- effects ------------------------------------------------------------------------------


def test_emit_effect_and_subscribe_reach_on_effect(probe: Spirit, effects: list[Effect]) -> None:
    assert probe.call_sync("emit", 7, "payload ✓") == 0  # the handler returned None
    assert probe.call_sync("subscribe", "topic/a") == 0
    assert effects == [
        Effect("abi_probe", 7, "payload ✓".encode()),
        Effect("abi_probe", "subscribe", b"topic/a"),
    ]


def test_effect_handler_result_goes_back_to_the_guest() -> None:
    seen: list[Effect] = []

    def handler(effect: Effect) -> int:
        seen.append(effect)
        return 41 + len(seen)

    with Spirit.load_sync(PROBE, on_effect=handler) as spirit:
        assert spirit.call_sync("emit", 1, "x") == 42
        assert spirit.call_sync("subscribe", "y") == 43


def test_effects_without_a_handler_return_minus_one() -> None:
    with Spirit.load_sync(PROBE) as spirit:
        assert spirit.call_sync("emit", 1, "dropped") == -1
        assert spirit.call_sync("subscribe", "dropped") == -1


def test_effect_handler_exception_is_the_trap_cause() -> None:
    def handler(effect: Effect) -> None:
        raise LookupError(f"no handler for {effect.kind}")

    with Spirit.load_sync(PROBE, on_effect=handler) as spirit:
        err = trap(spirit, "emit", 3, "x")
    assert isinstance(err.__cause__, LookupError)
    assert str(err.__cause__) == "no handler for 3"


# ---- debugging and failure ----------------------------------------------------------------


def test_breakpoint_logs_and_goes_on(probe: Spirit, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vudo.spirit")
    assert probe.call_sync("breakpoint") is None
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == ["breakpoint"]


def test_assert_passes_when_true(probe: Spirit) -> None:
    assert probe.call_sync("check", 1, "fine") is None
    assert probe.call_sync("check", -1, "any nonzero is true") is None


def test_assert_false_traps_with_the_guest_message(probe: Spirit) -> None:
    err = trap(probe, "check", 0, "x must be positive")
    assert "assertion failed: x must be positive" in err.message
    assert "assertion failed: x must be positive" in str(err)
    assert err.spirit == "abi_probe" and err.function == "check"
    assert isinstance(err.__cause__, GuestPanic)


def test_panic_traps_with_the_guest_message(probe: Spirit) -> None:
    err = trap(probe, "panic", "ünexpected state")
    assert "panic: ünexpected state" in str(err)
    assert isinstance(err.__cause__, GuestPanic)


def test_abort_traps_with_message_file_and_line(probe: Spirit) -> None:
    err = trap(probe, "abort", 42)
    assert "abort: abort requested at abi_probe.dol:42" in str(err)
    assert isinstance(err.__cause__, GuestPanic)


def test_spirit_stays_usable_after_a_guest_trap(probe: Spirit, output: list[str]) -> None:
    trap(probe, "panic", "first")
    probe.call_sync("println", "still alive")
    assert output == ["still alive\n"]


def test_a_later_trap_does_not_repeat_an_earlier_guest_message(probe: Spirit) -> None:
    trap(probe, "panic", "the first failure")
    err = trap(probe, "fill", 0xFFFFFF00, 0, 4096)  # a wasm trap of the guest's own
    assert "the first failure" not in str(err)
    assert "out of bounds" in str(err)
    assert err.__cause__ is None


# ---- out-of-bounds guest pointers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ptr", "length"),
    [(0xFFFFFFF0, 4), (0, 0x7FFFFFFF), (0, -1), (65536 - 2, 4), (-16, 4)],
    ids=["high-pointer", "huge-length", "length-minus-one", "straddles-end", "negative-pointer"],
)
def test_out_of_bounds_print_traps_with_memory_access_error(
    probe: Spirit, output: list[str], ptr: int, length: int
) -> None:
    memory = probe.memory
    assert memory is not None
    if ptr == 65536 - 2:
        ptr = memory.size - 2
    err = trap(probe, "raw_print", ptr, length)
    assert isinstance(err.__cause__, MemoryAccessError)
    assert "out-of-bounds" in str(err.__cause__)
    assert output == []
    probe.call_sync("print", "survived")  # the process and the Spirit carry on
    assert output == ["survived"]


def test_out_of_bounds_random_bytes_traps(probe: Spirit) -> None:
    err = trap(probe, "random_bytes", 0xFFFFFFF0, 64)
    assert isinstance(err.__cause__, MemoryAccessError)


def test_invalid_utf8_text_traps_with_a_clear_cause(probe: Spirit) -> None:
    memory = probe.memory
    assert memory is not None
    ptr = memory.alloc(2)
    memory.write_bytes(ptr, b"\xff\xfe")
    err = trap(probe, "raw_print", ptr, 2)
    assert "invalid UTF-8" in str(err.__cause__)


# ---- messaging: both signature variants ---------------------------------------------------

SPEC_MESSAGING = """(module
  (import "loa" "vudo_send" (func $send (param i32 i32 i32 i32) (result i32)))
  (import "loa" "vudo_recv" (func $recv (result i32)))
  (import "loa" "vudo_pending" (func $pending (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "peerhello")
  (func (export "send") (result i32)
    (call $send (i32.const 0) (i32.const 4) (i32.const 4) (i32.const 5)))
  (func (export "recv") (result i32) (call $recv))
  (func (export "pending") (result i32) (call $pending)))"""

TS_MESSAGING = """(module
  (import "env" "vudo_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "vudo_recv" (func $recv (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "vudo_pending" (func $pending (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "peerhello")
  (func (export "send") (param $channel i32) (result i32)
    (call $send (i32.const 0) (i32.const 4) (local.get $channel) (i32.const 4) (i32.const 5)))
  ;; sender name into 100.., payload into 200..; buffer sizes given by the caller
  (func (export "recv") (param $channel i32) (param $from_max i32) (param $max i32) (result i32)
    (call $recv (local.get $channel)
      (i32.const 100) (local.get $from_max) (i32.const 200) (local.get $max)))
  (func (export "pending") (param $channel i32) (result i32)
    (call $pending (local.get $channel))))"""


def test_messaging_variants_outside_a_seance() -> None:
    with Spirit.load_sync(SPEC_MESSAGING.encode()) as spec:
        assert spec.call_sync("send") == 0
        assert spec.call_sync("recv") == -1
        assert spec.call_sync("pending") == 0
    with Spirit.load_sync(TS_MESSAGING.encode()) as ts:
        assert ts.call_sync("send", 3) == 0
        assert ts.call_sync("recv", 3, 64, 64) == -1
        assert ts.call_sync("pending", 3) == 0


def _session(bus: MessageBus) -> types.SimpleNamespace:
    return types.SimpleNamespace(bus=bus, state=None)


def test_spec_variant_sends_and_receives_through_a_bus() -> None:
    bus = MessageBus()
    for name in ("me", "peer"):
        bus.join(name)
    session = _session(bus)
    sender = Spirit.load_sync(SPEC_MESSAGING.encode(), name="me", seance=session)
    peer = Spirit.load_sync(SPEC_MESSAGING.encode(), name="peer", seance=session)
    assert sender.call_sync("send") == 1  # "me" -> "peer": b"hello"
    assert peer.call_sync("pending") == 1
    ptr = peer.call_sync("recv")
    assert ptr >= 0 and peer.memory is not None
    assert peer.memory.read_bytes_prefixed(ptr) == b"hello"
    assert peer.call_sync("pending") == 0
    assert peer.call_sync("recv") == -1


def test_ts_variant_sends_and_receives_on_a_channel() -> None:
    bus = MessageBus()
    for name in ("me", "peer"):
        bus.join(name)
    session = _session(bus)
    sender = Spirit.load_sync(TS_MESSAGING.encode(), name="me", seance=session)
    peer = Spirit.load_sync(TS_MESSAGING.encode(), name="peer", seance=session)
    assert sender.call_sync("send", 5) == 1
    assert peer.call_sync("pending", 5) == 1
    assert peer.call_sync("pending", 0) == 0
    assert peer.call_sync("recv", 5, 64, 2) == -2  # payload buffer too small: stays queued
    assert peer.call_sync("pending", 5) == 1
    assert peer.call_sync("recv", 5, 64, 64) == 5
    assert peer.memory is not None
    assert peer.memory.read_bytes(100, 2) == b"me"
    assert peer.memory.read_bytes(200, 5) == b"hello"
    assert peer.call_sync("recv", 5, 64, 64) == -1


def test_stdout_write_failure_is_the_trap_cause() -> None:
    out = io.StringIO()
    out.close()
    with Spirit.load_sync(PROBE, stdout=out) as spirit:
        err = trap(spirit, "print", "x")
    assert isinstance(err.__cause__, ValueError)  # I/O operation on closed file
