"""Spirit: loading, introspection, calls, facades, traps, deadlines, fuel and async calls."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Protocol

import pytest
from conftest import (
    CALCULATOR,
    COUNTER,
    GEOMETRY,
    LOOPS,
    SPIRITS,
    burn_expected,
)

from vudo_runtime import (
    ExportNotFoundError,
    FuelExhausted,
    Signature,
    Spirit,
    SpiritTimeout,
    SpiritTrap,
    VudoError,
    load_spirit,
)
from vudo_runtime.options import CallMode

CALC_FUNCTIONS = ["add", "sub", "mul", "div", "neg", "average", "noop", "divmod", "is_even"]

#: burn(BURN_N) runs for roughly 0.1 s: long enough to be seen, short enough to repeat.
BURN_N = 100_000_000


class _PathLike:
    """A PathLike that is neither str nor Path."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __fspath__(self) -> str:
        return str(self._path)


# ---- loading ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(str(CALCULATOR), id="str-path"),
        pytest.param(CALCULATOR, id="Path"),
        pytest.param(_PathLike(CALCULATOR), id="PathLike"),
        pytest.param(str(SPIRITS / "calculator.wat"), id="wat-str-path"),
        pytest.param(SPIRITS / "calculator.wat", id="wat-Path"),
    ],
)
def test_load_from_a_path_names_the_spirit_after_the_file(source: object) -> None:
    spirit = Spirit.load_sync(source)  # type: ignore[arg-type]
    assert spirit.name == "calculator"
    assert spirit.call_sync("add", 40, 2) == 42


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(CALCULATOR.read_bytes(), id="wasm-bytes"),
        pytest.param(bytearray(CALCULATOR.read_bytes()), id="wasm-bytearray"),
        pytest.param(memoryview(CALCULATOR.read_bytes()), id="wasm-memoryview"),
        pytest.param((SPIRITS / "calculator.wat").read_bytes(), id="wat-bytes"),
    ],
)
def test_load_from_bytes(source: bytes) -> None:
    spirit = Spirit.load_sync(source, name="calc")
    assert spirit.name == "calc"
    assert spirit.call_sync("add", 40, 2) == 42
    assert spirit.list_functions() == CALC_FUNCTIONS


def test_wat_text_bytes_with_a_leading_comment() -> None:
    wat = b';; a comment first\n(module (func (export "one") (result i64) (i64.const 1)))'
    assert Spirit.load_sync(wat).call_sync("one") == 1


def test_name_override_for_a_path() -> None:
    assert Spirit.load_sync(CALCULATOR, name="abacus").name == "abacus"


async def test_load_spirit_async() -> None:
    spirit = await load_spirit(CALCULATOR)
    assert spirit.name == "calculator"
    assert await spirit.call("add", 40, 2) == 42
    named = await load_spirit(str(CALCULATOR), name="other", timeout=5)
    assert named.name == "other"
    assert named.timeout == 5


async def test_spirit_load_classmethod_is_the_same_as_load_spirit() -> None:
    spirit = await Spirit.load(SPIRITS / "calculator.wat")
    assert spirit.call_sync("mul", 6, 7) == 42


def test_two_loads_are_independent_instances(counter: Spirit) -> None:
    other = Spirit.load_sync(COUNTER)
    ptr = counter.call_sync("new_Counter", 10)
    counter.call_sync("Counter.increment", ptr)
    fresh = other.call_sync("new_Counter", 0)
    assert fresh == ptr  # same heap layout, separate memories
    assert other.call_sync("Counter.get_value", fresh) == 0
    assert counter.call_sync("Counter.get_value", ptr) == 11


# ---- introspection ----------------------------------------------------------------------


def test_list_and_has_function(calc: Spirit) -> None:
    assert calc.list_functions() == CALC_FUNCTIONS
    assert calc.has_function("divmod")
    assert not calc.has_function("memory")
    assert not calc.has_function("nope")


def test_signature(calc: Spirit, counter: Spirit) -> None:
    assert calc.signature("add") == Signature(("i64", "i64"), ("i64",))
    assert calc.signature("divmod").results == ("i64", "i64")
    assert calc.signature("noop") == Signature((), ())
    assert calc.signature("average").params == ("f64", "f64")
    assert calc.signature("is_even").results == ("i32",)
    assert counter.signature("Counter.add") == Signature(("i32", "i64"), ("i64",))
    assert str(calc.signature("divmod")) == "(i64, i64) -> (i64, i64)"
    assert all(isinstance(t, str) for t in calc.signature("add").params)


def test_signature_of_a_missing_function(calc: Spirit) -> None:
    with pytest.raises(ExportNotFoundError, match="available functions: add, sub"):
        calc.signature("nope")


def test_exports_map_names_to_kinds(calc: Spirit, counter: Spirit) -> None:
    assert calc.exports == dict.fromkeys(CALC_FUNCTIONS, "func")
    assert counter.exports == {
        "memory": "memory",
        "new_Counter": "func",
        "Counter.increment": "func",
        "Counter.get_value": "func",
        "Counter.add": "func",
        "add_numbers": "func",
    }
    assert counter.list_functions() == [n for n, k in counter.exports.items() if k == "func"]


def test_exports_is_a_copy(calc: Spirit) -> None:
    calc.exports["add"] = "table"
    assert calc.exports["add"] == "func"


# ---- results and argument conversion -----------------------------------------------------


def test_results_by_signature(calc: Spirit) -> None:
    assert calc.call_sync("add", 40, 2) == 42
    assert calc.call_sync("sub", 2, 40) == -38
    assert calc.call_sync("mul", -6, 7) == -42
    assert calc.call_sync("div", -7, 2) == -3  # truncated, like i64.div_s
    assert calc.call_sync("neg", 5) == -5
    assert calc.call_sync("noop") is None
    assert calc.call_sync("divmod", 7, 2) == (3, 1)
    assert calc.call_sync("divmod", -7, 2) == (-3, -1)
    assert isinstance(calc.call_sync("divmod", 7, 2), tuple)
    result = calc.call_sync("average", 1.0, 2.0)
    assert result == 1.5 and isinstance(result, float)
    assert calc.call_sync("is_even", 4) == 1
    assert calc.call_sync("is_even", 3) == 0


def test_int_arguments_for_f64(calc: Spirit) -> None:
    result = calc.call_sync("average", 1, 2)
    assert result == 1.5 and isinstance(result, float)
    assert calc.call_sync("average", True, 2) == 1.5
    assert calc.call_sync("average", 2**60, 2**60) == float(2**60)


def test_float_specials_cross_f64(calc: Spirit) -> None:
    assert calc.call_sync("average", math.inf, 1.0) == math.inf
    assert calc.call_sync("average", -math.inf, 1.0) == -math.inf
    assert math.isnan(calc.call_sync("average", math.nan, 1.0))
    assert math.isnan(calc.call_sync("average", math.inf, -math.inf))


def test_bool_arguments_for_i32() -> None:
    geometry = Spirit.load_sync(GEOMETRY)
    on = geometry.call_sync("new_Mixed", 2, True, 0.5)
    off = geometry.call_sync("new_Mixed", 2, False, 0.5)
    assert geometry.call_sync("Mixed.describe", on) == 3.5
    assert geometry.call_sync("Mixed.describe", off) == 2.5


def test_bool_arguments_for_i64(calc: Spirit) -> None:
    assert calc.call_sync("add", True, True) == 2


def test_i64_unsigned_spellings_wrap_to_the_same_bits(calc: Spirit) -> None:
    assert calc.call_sync("add", 2**64 - 1, 2) == 1
    assert calc.call_sync("add", 2**63, 0) == -(2**63)
    assert calc.call_sync("neg", 2**64 - 1) == 1
    assert calc.call_sync("add", -(2**63), 0) == -(2**63)
    assert calc.call_sync("add", 2**63 - 1, 1) == -(2**63)  # wraps like i64.add


def test_i32_range_and_unsigned_spellings(types: Spirit) -> None:
    assert types.call_sync("id_i32", -(2**31)) == -(2**31)
    assert types.call_sync("id_i32", 2**31 - 1) == 2**31 - 1
    assert types.call_sync("id_i32", 2**31) == -(2**31)
    assert types.call_sync("id_i32", 2**32 - 1) == -1
    assert types.call_sync("id_i32", True) == 1


def test_several_value_types_in_one_call(types: Spirit) -> None:
    assert types.call_sync("mix", 1, 2, 0.5, 0.25) == (0.25, 0.5, 2, 1)
    assert types.call_sync("mix", 2**32 - 1, 2**64 - 1, 1, 2) == (2.0, 1.0, -1, -1)


def test_objects_with_index_are_ints(calc: Spirit) -> None:
    class Seven:
        def __index__(self) -> int:
            return 7

    assert calc.call_sync("add", Seven(), 1) == 8


# ---- dotted exports and facades ----------------------------------------------------------


def test_dotted_gene_methods_via_call(counter: Spirit) -> None:
    ptr = counter.call_sync("new_Counter", 41)
    assert ptr >= 1024  # the guest's heap starts above its data
    assert counter.call_sync("Counter.increment", ptr) == 42
    assert counter.call_sync("Counter.get_value", ptr) == 42
    assert counter.call_sync("Counter.add", ptr, 8) == 50
    assert counter.call_sync("Counter.get_value", ptr) == 42


class CounterFacade(Protocol):
    async def new_Counter(self, value: int) -> int: ...
    async def Counter__increment(self, ptr: int) -> int: ...
    async def Counter__get_value(self, ptr: int) -> int: ...
    async def add_numbers(self, a: int, b: int) -> int: ...


class CalculatorFacade(Protocol):
    async def add(self, a: int, b: int) -> int: ...
    async def divmod(self, a: int, b: int) -> tuple[int, int]: ...
    async def average(self, a: float, b: float) -> float: ...
    async def noop(self) -> None: ...


async def test_protocol_facade(counter: Spirit) -> None:
    facade = counter.as_(CounterFacade)
    ptr = await facade.new_Counter(41)
    assert await facade.Counter__increment(ptr) == 42
    assert await facade.Counter__get_value(ptr) == 42
    assert await counter.call("Counter.get_value", ptr) == 42
    assert await facade.add_numbers(40, 2) == 42
    assert "CounterFacade" in repr(facade)


async def test_calculator_facade(calc: Spirit) -> None:
    facade = calc.as_(CalculatorFacade)
    assert await facade.add(40, 2) == 42
    assert await facade.divmod(7, 2) == (3, 1)
    assert await facade.average(1, 2) == 1.5
    assert await facade.noop() is None
    with pytest.raises(SpiritTrap):
        await facade.divmod(1, 0)


async def test_facade_methods_take_a_timeout() -> None:
    class Loops(Protocol):
        async def spin(self) -> None: ...

    facade = Spirit.load_sync(LOOPS).as_(Loops)
    with pytest.raises(SpiritTimeout):
        await facade.spin(timeout=0.05)


def test_facade_with_a_method_the_spirit_lacks(calc: Spirit) -> None:
    class Wrong(Protocol):
        async def add(self, a: int, b: int) -> int: ...
        async def frobnicate(self) -> None: ...

    with pytest.raises(ExportNotFoundError) as info:
        calc.as_(Wrong)
    assert "frobnicate" in str(info.value)
    assert "add" in info.value.available


# ---- sync and async agree ---------------------------------------------------------------


async def test_call_and_call_sync_agree(calc: Spirit) -> None:
    for fn, args in [
        ("add", (40, 2)),
        ("divmod", (-9, 4)),
        ("average", (1, 4)),
        ("noop", ()),
        ("is_even", (2**64 - 2,)),
    ]:
        assert await calc.call(fn, *args) == calc.call_sync(fn, *args)


@pytest.mark.parametrize("mode", ["auto", "inline", "thread"])
async def test_every_call_mode_gives_the_result(calc: Spirit, mode: CallMode) -> None:
    assert await calc.call("add", 40, 2, mode=mode) == 42
    with pytest.raises(SpiritTrap):
        await calc.call("div", 1, 0, mode=mode)


async def test_load_time_mode_thread() -> None:
    spirit = Spirit.load_sync(CALCULATOR, mode="thread")
    assert await spirit.call("add", 1, 2) == 3
    assert spirit.call_sync("add", 1, 2) == 3


# ---- traps ------------------------------------------------------------------------------


def test_division_by_zero(calc: Spirit) -> None:
    with pytest.raises(SpiritTrap) as info:
        calc.call_sync("div", 1, 0)
    trap = info.value
    assert trap.code == "integer_division_by_zero"
    assert trap.spirit == "calculator"
    assert trap.function == "div"
    assert "divide by zero" in str(trap)
    assert "calculator.div" in str(trap)
    assert trap.backtrace  # the wasm frames
    assert not isinstance(trap, SpiritTimeout | FuelExhausted)


def test_integer_overflow_trap(calc: Spirit) -> None:
    with pytest.raises(SpiritTrap) as info:
        calc.call_sync("div", -(2**63), -1)
    assert info.value.code == "integer_overflow"


def test_unreachable(loops: Spirit) -> None:
    with pytest.raises(SpiritTrap) as info:
        loops.call_sync("unreachable")
    assert info.value.code == "unreachable"
    assert info.value.function == "unreachable"
    assert info.value.spirit == "loops"


def test_out_of_bounds(loops: Spirit) -> None:
    with pytest.raises(SpiritTrap) as info:
        loops.call_sync("oob_read")
    assert info.value.code == "memory_out_of_bounds"
    assert "out of bounds" in str(info.value)


def test_spirit_stays_usable_after_a_trap(calc: Spirit) -> None:
    for _ in range(3):
        with pytest.raises(SpiritTrap):
            calc.call_sync("div", 1, 0)
        assert calc.call_sync("add", 40, 2) == 42
    with pytest.raises(SpiritTrap):
        calc.call_sync("divmod", 1, 0)
    assert calc.call_sync("divmod", 7, 2) == (3, 1)


async def test_traps_through_await_call(calc: Spirit, loops: Spirit) -> None:
    with pytest.raises(SpiritTrap) as info:
        await calc.call("div", 1, 0)
    assert info.value.code == "integer_division_by_zero"
    assert await calc.call("add", 40, 2) == 42
    with pytest.raises(SpiritTrap, match="out of bounds"):
        await loops.call("oob_read", mode="thread")
    assert await loops.call("sum_to", 10) == 55


def test_memory_survives_a_trap(counter: Spirit) -> None:
    ptr = counter.call_sync("new_Counter", 5)
    with pytest.raises(SpiritTrap):
        counter.call_sync("Counter.get_value", 2**32 - 4)  # past the end of memory
    assert counter.call_sync("Counter.get_value", ptr) == 5


# ---- deadlines --------------------------------------------------------------------------


def test_load_time_timeout() -> None:
    loops = Spirit.load_sync(LOOPS, timeout=0.1)
    start = time.perf_counter()
    with pytest.raises(SpiritTimeout) as info:
        loops.call_sync("spin")
    assert time.perf_counter() - start < 1.0
    timeout = info.value
    assert isinstance(timeout, TimeoutError)
    assert isinstance(timeout, SpiritTrap)
    assert timeout.code == "interrupt"
    assert timeout.function == "spin"
    assert "0.1" in str(timeout)


def test_per_call_timeout(loops: Spirit) -> None:
    start = time.perf_counter()
    with pytest.raises(SpiritTimeout):
        loops.call_sync("spin", timeout=0.1)
    assert time.perf_counter() - start < 1.0


def test_per_call_timeout_overrides_the_load_time_one() -> None:
    loops = Spirit.load_sync(LOOPS, timeout=60)
    start = time.perf_counter()
    with pytest.raises(SpiritTimeout):
        loops.call_sync("spin", timeout=0.1)
    assert time.perf_counter() - start < 1.0


async def test_timeout_through_await_call(loops: Spirit) -> None:
    start = time.perf_counter()
    with pytest.raises(SpiritTimeout):
        await loops.call("spin", timeout=0.1)
    assert time.perf_counter() - start < 1.0


async def test_timeout_on_a_worker_thread() -> None:
    loops = Spirit.load_sync(LOOPS, timeout=0.1)
    start = time.perf_counter()
    with pytest.raises(SpiritTimeout):
        await loops.call("spin", mode="thread")
    assert time.perf_counter() - start < 1.0


def test_a_deadline_applies_to_one_call_only() -> None:
    loops = Spirit.load_sync(LOOPS, timeout=0.1)
    with pytest.raises(SpiritTimeout):
        loops.call_sync("spin")
    # Each call gets a fresh deadline: later calls that fit in it succeed.
    for _ in range(3):
        assert loops.call_sync("sum_to", 1000) == 500500
    time.sleep(0.15)  # longer than the deadline, between calls: must not count
    assert loops.call_sync("sum_to", 10) == 55


def test_per_call_deadline_is_cleared_after_the_call(loops: Spirit) -> None:
    with pytest.raises(SpiritTimeout):
        loops.call_sync("spin", timeout=0.05)
    time.sleep(0.1)
    assert loops.call_sync("burn", 1000) == burn_expected(1000)


# ---- fuel -------------------------------------------------------------------------------


def test_fuel_exhausted() -> None:
    loops = Spirit.load_sync(LOOPS, fuel=10_000)
    with pytest.raises(FuelExhausted) as info:
        loops.call_sync("spin")
    assert isinstance(info.value, SpiritTrap)
    assert not isinstance(info.value, TimeoutError)
    assert info.value.code == "out_of_fuel"
    assert info.value.function == "spin"
    assert "10000" in str(info.value)


def test_fuel_is_refilled_per_call() -> None:
    loops = Spirit.load_sync(LOOPS, fuel=10_000)
    with pytest.raises(FuelExhausted):
        loops.call_sync("spin")
    assert loops.call_sync("sum_to", 10) == 55
    # sum_to(700) needs most of the budget: five in a row only fit with a refill each time
    for _ in range(5):
        assert loops.call_sync("sum_to", 700) == 245350


async def test_fuel_through_await_call() -> None:
    loops = Spirit.load_sync(LOOPS, fuel=10_000)
    with pytest.raises(FuelExhausted):
        await loops.call("spin")
    with pytest.raises(FuelExhausted):
        await loops.call("spin", mode="thread")
    assert await loops.call("sum_to", 10) == 55


def test_fuel_and_timeout_together() -> None:
    loops = Spirit.load_sync(LOOPS, fuel=10_000, timeout=5)
    with pytest.raises(FuelExhausted):
        loops.call_sync("spin")
    start = time.perf_counter()
    with pytest.raises(SpiritTimeout):
        Spirit.load_sync(LOOPS, fuel=10**15, timeout=0.1).call_sync("spin")
    assert time.perf_counter() - start < 1.0


# ---- concurrency ------------------------------------------------------------------------


async def test_long_calls_on_two_spirits_via_gather() -> None:
    first = await load_spirit(LOOPS)
    second = await load_spirit(LOOPS, name="loops2")
    results = await asyncio.gather(
        first.call("burn", BURN_N),
        second.call("burn", BURN_N - 1),
        first.call("sum_to", 100),
    )
    assert results == [burn_expected(BURN_N), burn_expected(BURN_N - 1), 5050]


async def test_concurrent_calls_on_one_spirit_are_serialised(loops: Spirit) -> None:
    ns = [1_000_000 + i for i in range(6)]
    modes: list[CallMode | None] = ["thread", None, "inline"] * 2
    results = await asyncio.gather(
        *(loops.call("burn", n, mode=m) for n, m in zip(ns, modes, strict=True))
    )
    assert results == [burn_expected(n) for n in ns]


async def test_the_event_loop_runs_during_a_threaded_call(loops: Spirit) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # let the ticker start
    try:
        ticks = 0
        result = await loops.call("burn", BURN_N, mode="thread")
        seen = ticks
    finally:
        task.cancel()
    assert result == burn_expected(BURN_N)
    assert seen >= 3


async def test_auto_mode_learns_that_a_function_is_slow(loops: Spirit) -> None:
    assert await loops.call("burn", 10) == burn_expected(10)
    assert not loops._funcs["burn"].slow
    assert await loops.call("burn", BURN_N // 4) == burn_expected(BURN_N // 4)
    assert loops._funcs["burn"].slow
    # once slow, calls move off the loop thread: the loop keeps running
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        ticks = 0
        assert await loops.call("burn", BURN_N) == burn_expected(BURN_N)
        seen = ticks
    finally:
        task.cancel()
    assert seen >= 3
    # and it moves back when its calls are short again (a few tries: a busy machine may
    # preempt the worker thread in the middle of one microsecond call)
    for _ in range(5):
        assert await loops.call("burn", 10) == burn_expected(10)
        if not loops._funcs["burn"].slow:
            break
    assert not loops._funcs["burn"].slow


async def test_thread_mode_does_not_block_other_spirits(calc: Spirit, loops: Spirit) -> None:
    long_call = asyncio.ensure_future(loops.call("burn", BURN_N, mode="thread"))
    await asyncio.sleep(0)
    quick = [await calc.call("add", i, 1) for i in range(50)]
    assert quick == [i + 1 for i in range(50)]
    assert await long_call == burn_expected(BURN_N)


def test_burn_expected_matches_small_runs(loops: Spirit) -> None:
    for n in (0, 1, 2, 3, 17, 1000):
        assert loops.call_sync("burn", n) == burn_expected(n)


# ---- lifetime ---------------------------------------------------------------------------


def test_close_then_call() -> None:
    spirit = Spirit.load_sync(CALCULATOR)
    assert spirit.call_sync("add", 1, 2) == 3
    spirit.close()
    assert spirit.closed
    with pytest.raises(VudoError, match="closed"):
        spirit.call_sync("add", 1, 2)
    spirit.close()  # idempotent


def test_context_managers_close() -> None:
    with Spirit.load_sync(CALCULATOR) as spirit:
        assert spirit.call_sync("add", 1, 2) == 3
    assert spirit.closed


async def test_async_context_manager_closes() -> None:
    async with await load_spirit(CALCULATOR) as spirit:
        assert await spirit.call("add", 1, 2) == 3
    assert spirit.closed
    with pytest.raises(VudoError):
        await spirit.call("add", 1, 2)


def test_repr_names_the_spirit(calc: Spirit) -> None:
    assert "calculator" in repr(calc)


async def test_protocol_facade_reads_back_annotated_results() -> None:
    import typing

    class Strings(typing.Protocol):
        async def upper(self, s: str) -> str: ...
        async def str_len(self, s: str) -> int: ...

    facade = (await load_spirit(SPIRITS / "strings.wasm")).as_(Strings)
    assert await facade.upper("héllo") == "HéLLO"
    assert await facade.str_len("héllo") == 6


def test_string_arguments_are_freed_after_the_call() -> None:
    spirit = Spirit.load_sync(SPIRITS / "strings.wasm")
    text = "x" * 1024
    for _ in range(20_000):  # about 20 MiB: more than the memory could hold if kept
        assert spirit.call_sync("str_len", text) == 1024
    assert spirit.memory is not None
    assert spirit.memory.allocated == 0
    with pytest.raises(SpiritTrap):
        spirit.call_sync("upper", "\xff" * 70_000)  # the guest's own heap is too small
    assert spirit.memory.allocated == 0  # freed on a trap too


@pytest.mark.parametrize("wasm", sorted(SPIRITS.glob("*.wasm")), ids=lambda p: p.stem)
def test_interface_read_from_the_binary_matches_the_engine(wasm: Path) -> None:
    from vudo_runtime import cache
    from vudo_runtime.engine import EngineSettings
    from vudo_runtime.module import ModuleInfo

    module = cache.compile_module(wasm.read_bytes(), EngineSettings(), cache=False)
    from_binary = ModuleInfo.of(module)
    assert cache.interface_of(module) is not None
    cache._interfaces.pop(module)
    try:
        assert ModuleInfo.of(module) == from_binary  # by wasmtime's reflection
    finally:
        cache.clear_memory_cache()
