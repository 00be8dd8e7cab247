"""Bad input gives the runtime's own errors, with messages that say what and where."""

from __future__ import annotations

import contextlib
import math
import random
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    CALCULATOR,
    I32_MAX_UNSIGNED,
    I32_MIN,
    I64_MAX_UNSIGNED,
    I64_MIN,
    SPIRITS,
    to_signed,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vudo_runtime import (
    ArgumentError,
    ExportNotFoundError,
    MissingImportError,
    Spirit,
    SpiritLoadError,
    VudoError,
)

RANGE_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# ---- arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "args", "position", "wasm_type", "shown"),
    [
        ("add", (2**64, 1), 1, "i64", "18446744073709551616"),
        ("add", (1, -(2**63) - 1), 2, "i64", "-9223372036854775809"),
        ("add", (1, 10**30), 2, "i64", str(10**30)),
        ("add", (1.5, 2), 1, "i64", "1.5"),
        ("add", (1, 2.0), 2, "i64", "2.0"),
        ("add", ("40", 2), 1, "i64", "'40'"),
        ("add", (None, 2), 1, "i64", "None"),
        ("add", (1, Decimal(2)), 2, "i64", "Decimal('2')"),
        ("neg", (b"\x01",), 1, "i64", "b'\\x01'"),
        ("average", ("1.5", 2.0), 1, "f64", "'1.5'"),
        ("average", (1.0, None), 2, "f64", "None"),
        ("average", (1.0, 1j), 2, "f64", "1j"),
        ("average", (10**400, 1.0), 1, "f64", "1000"),
        ("average", (1.0, [1.0]), 2, "f64", "[1.0]"),
    ],
)
def test_argument_error_names_function_position_type_and_value(
    calc: Spirit, fn: str, args: tuple[Any, ...], position: int, wasm_type: str, shown: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        calc.call_sync(fn, *args)
    message = str(info.value)
    assert f"'{fn}'" in message
    assert f"argument {position}" in message
    assert wasm_type in message
    assert shown in message
    assert "calculator" in message
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, VudoError)
    assert calc.call_sync(fn, *(1 for _ in args)) is not None  # still usable


@pytest.mark.parametrize(
    ("fn", "value", "wasm_type"),
    [
        ("id_i32", 2**32, "i32"),
        ("id_i32", -(2**31) - 1, "i32"),
        ("id_i32", 2.0, "i32"),
        ("id_i32", "text", "i32"),  # no memory to put a string in
        ("id_i64", 2**64, "i64"),
        ("id_f32", "1", "f32"),
        ("id_f32", 2**1024, "f32"),
        ("id_f64", Decimal("sNaN"), "f64"),
    ],
)
def test_argument_error_for_every_value_type(
    types: Spirit, fn: str, value: Any, wasm_type: str
) -> None:
    with pytest.raises(ArgumentError, match=rf"'{fn}' argument 1 \({wasm_type}\)"):
        types.call_sync(fn, value)


def test_out_of_range_message_gives_the_accepted_range(calc: Spirit, types: Spirit) -> None:
    with pytest.raises(ArgumentError, match=r"-9223372036854775808\.\.18446744073709551615"):
        calc.call_sync("add", 2**64, 0)
    with pytest.raises(ArgumentError, match=r"-2147483648\.\.4294967295"):
        types.call_sync("id_i32", 2**32)


@pytest.mark.parametrize(
    ("fn", "args", "expected"),
    [
        ("add", (1,), 2),
        ("add", (), 2),
        ("add", (1, 2, 3), 2),
        ("neg", (1, 2), 1),
        ("noop", (1,), 0),
        ("average", (), 2),
    ],
)
def test_wrong_argument_count(calc: Spirit, fn: str, args: tuple[int, ...], expected: int) -> None:
    with pytest.raises(ArgumentError) as info:
        calc.call_sync(fn, *args)
    message = str(info.value)
    assert f"'{fn}' takes {expected} argument(s)" in message
    assert f"got {len(args)}" in message
    assert str(calc.signature(fn)) in message
    assert isinstance(info.value, TypeError)


async def test_argument_errors_through_await_call(calc: Spirit) -> None:
    with pytest.raises(ArgumentError, match="argument 2"):
        await calc.call("add", 1, "2")
    with pytest.raises(ArgumentError, match="takes 2"):
        await calc.call("add", 1, mode="thread")
    with pytest.raises(ArgumentError, match="out of range"):
        await calc.call("add", 2**64, 1, mode="inline")


def test_argument_errors_with_deadline_and_fuel() -> None:
    spirit = Spirit.load_sync(CALCULATOR, timeout=1, fuel=1000)
    with pytest.raises(ArgumentError, match="out of range"):
        spirit.call_sync("add", 2**64, 1)
    with pytest.raises(ArgumentError, match="takes 2"):
        spirit.call_sync("add", 1)
    assert spirit.call_sync("add", 1, 2) == 3


@RANGE_SETTINGS
@given(value=st.integers(min_value=-(2**70), max_value=2**70))
def test_i64_range_is_exactly_the_signed_and_unsigned_spellings(types: Spirit, value: int) -> None:
    if I64_MIN <= value <= I64_MAX_UNSIGNED:
        assert types.call_sync("id_i64", value) == to_signed(value, 64)
    else:
        with pytest.raises(ArgumentError):
            types.call_sync("id_i64", value)


@RANGE_SETTINGS
@given(value=st.integers(min_value=-(2**40), max_value=2**40))
def test_i32_range_is_exactly_the_signed_and_unsigned_spellings(types: Spirit, value: int) -> None:
    if I32_MIN <= value <= I32_MAX_UNSIGNED:
        assert types.call_sync("id_i32", value) == to_signed(value, 32)
    else:
        with pytest.raises(ArgumentError):
            types.call_sync("id_i32", value)


def test_range_edges(types: Spirit) -> None:
    for fn, lo, hi, bits in (
        ("id_i32", I32_MIN, I32_MAX_UNSIGNED, 32),
        ("id_i64", I64_MIN, I64_MAX_UNSIGNED, 64),
    ):
        assert types.call_sync(fn, lo) == lo
        assert types.call_sync(fn, hi) == -1
        assert types.call_sync(fn, 2 ** (bits - 1) - 1) == 2 ** (bits - 1) - 1
        assert types.call_sync(fn, 2 ** (bits - 1)) == lo
        for bad in (lo - 1, hi + 1):
            with pytest.raises(ArgumentError):
                types.call_sync(fn, bad)


# ---- unknown functions ------------------------------------------------------------------


def test_unknown_function_lists_what_there_is(calc: Spirit) -> None:
    with pytest.raises(ExportNotFoundError) as info:
        calc.call_sync("addd", 1, 2)
    err = info.value
    assert isinstance(err, LookupError)
    assert err.name == "addd"
    assert err.spirit == "calculator"
    assert err.available == calc.list_functions()
    assert "available functions: add, sub, mul, div, neg, average, noop, divmod, is_even" in str(
        err
    )


async def test_unknown_function_through_await_call(calc: Spirit) -> None:
    with pytest.raises(ExportNotFoundError, match="'nope'"):
        await calc.call("nope")


def test_memory_is_not_a_function(counter: Spirit) -> None:
    assert counter.exports["memory"] == "memory"
    with pytest.raises(ExportNotFoundError):
        counter.call_sync("memory")


def test_unsupported_value_types_fail_clearly_at_call() -> None:
    spirit = Spirit.load_sync(
        b'(module (func (export "ref") (param externref) (result externref) (local.get 0)))'
    )
    assert spirit.list_functions() == ["ref"]
    with pytest.raises(ArgumentError, match="only i32, i64, f32 and f64"):
        spirit.call_sync("ref", None)


def test_v128_in_a_signature_is_refused_not_fatal() -> None:
    code = (
        "from vudo_runtime.spirit import Spirit\n"
        "from vudo_runtime.errors import VudoError\n"
        "wat = b'(module (func (export \"v\") (result v128) (v128.const i64x2 0 0)))'\n"
        "try:\n"
        "    Spirit.load_sync(wat, cache=False).call_sync('v')\n"
        "except VudoError as exc:\n"
        "    print('refused:', type(exc).__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-300:]
    assert "refused" in proc.stdout


# ---- sources that are not Spirits -------------------------------------------------------


def test_random_bytes() -> None:
    junk = random.Random(20260521).randbytes(512)
    assert not junk.startswith(b"\0asm")
    with pytest.raises(SpiritLoadError, match="not WebAssembly"):
        Spirit.load_sync(junk)


def test_random_bytes_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.wasm"
    path.write_bytes(random.Random(7).randbytes(300))
    with pytest.raises(SpiritLoadError) as info:
        Spirit.load_sync(path)
    assert str(path) in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wasm"
    path.write_bytes(b"")
    with pytest.raises(SpiritLoadError, match="empty"):
        Spirit.load_sync(path)


def test_empty_bytes() -> None:
    with pytest.raises(SpiritLoadError, match="empty"):
        Spirit.load_sync(b"")


def test_truncated_wasm(tmp_path: Path) -> None:
    wasm = CALCULATOR.read_bytes()
    path = tmp_path / "half.wasm"
    path.write_bytes(wasm[: len(wasm) // 2])
    with pytest.raises(SpiritLoadError) as info:
        Spirit.load_sync(path)
    message = str(info.value)
    assert str(path) in message
    assert "not a valid WebAssembly module" in message
    assert "end-of-file" in message  # the cause, not only "failed to parse"


@pytest.mark.parametrize("cut", [4, 7, 9, 20, 100, 200, 277])
def test_wasm_cut_short(cut: int) -> None:
    with pytest.raises(SpiritLoadError):
        Spirit.load_sync(CALCULATOR.read_bytes()[:cut])


def test_invalid_module_says_why() -> None:
    wat = b'(module (func (export "bad") (result i32) (i64.const 1)))'
    with pytest.raises(SpiritLoadError, match="type mismatch"):
        Spirit.load_sync(wat)


def test_invalid_module_binary() -> None:
    wasm = bytearray(CALCULATOR.read_bytes())
    wasm[8] = 0x7F  # no such section id
    with pytest.raises(SpiritLoadError, match="not a valid WebAssembly module"):
        Spirit.load_sync(bytes(wasm))


def test_wat_that_does_not_compile(tmp_path: Path) -> None:
    path = tmp_path / "broken.wat"
    path.write_text('(module (func (export "f") (result i32)\n', encoding="utf-8")
    with pytest.raises(SpiritLoadError, match="WAT text that does not compile"):
        Spirit.load_sync(str(path))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wasm"
    with pytest.raises(SpiritLoadError, match="not found") as info:
        Spirit.load_sync(path)
    assert str(path) in str(info.value)
    with pytest.raises(SpiritLoadError):
        Spirit.load_sync(str(path))


def test_a_directory() -> None:
    with pytest.raises(SpiritLoadError, match=str(SPIRITS)):
        Spirit.load_sync(SPIRITS)


async def test_load_errors_through_load_spirit(tmp_path: Path) -> None:
    from vudo_runtime import load_spirit

    with pytest.raises(SpiritLoadError):
        await load_spirit(tmp_path / "nope.wasm")
    with pytest.raises(SpiritLoadError):
        await load_spirit(b"\0asm\x01\0\0\0\xff")


def test_a_source_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="path or bytes"):
        Spirit.load_sync(42)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(tail=st.binary(max_size=64))
def test_arbitrary_bytes_after_the_wasm_header(tail: bytes) -> None:
    """The engine's parser sees anything: the outcome is a Spirit or a SpiritLoadError."""
    try:
        spirit = Spirit.load_sync(b"\0asm\x01\0\0\0" + tail, cache=False)
    except SpiritLoadError:
        return
    assert isinstance(spirit.list_functions(), list)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=64))
def test_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(SpiritLoadError):
        Spirit.load_sync(data, cache=False)


# ---- unmet imports ----------------------------------------------------------------------


def test_missing_import_lists_every_unmet_one() -> None:
    wat = b"""(module
      (import "foo" "bar" (func (param i32 f64) (result i64)))
      (import "loa" "no_such_function" (func))
      (func (export "f")))"""
    with pytest.raises(MissingImportError) as info:
        Spirit.load_sync(wat, name="needy")
    err = info.value
    assert isinstance(err, SpiritLoadError)
    assert err.spirit == "needy"
    assert err.missing == ["foo.bar: (i32, f64) -> (i64)", "loa.no_such_function: () -> ()"]
    message = str(err)
    assert "foo.bar: (i32, f64) -> (i64)" in message
    assert "2 unmet import(s)" in message
    assert "Loa" in message  # what to do


def test_missing_import_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "needs_foo.wat"
    path.write_text('(module (import "foo" "bar" (func)))', encoding="utf-8")
    with pytest.raises(MissingImportError, match=r"'needs_foo'[\s\S]*foo\.bar: \(\) -> \(\)"):
        Spirit.load_sync(path)


def test_known_host_function_with_the_wrong_signature() -> None:
    wat = b'(module (import "loa" "vudo_print" (func (param i64 i64 i64))))'
    with pytest.raises(SpiritLoadError, match="vudo_print"):
        Spirit.load_sync(wat)


# ---- options ----------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -1, math.nan, -math.inf])
def test_bad_load_time_timeout(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        Spirit.load_sync(CALCULATOR, timeout=timeout)


@pytest.mark.parametrize("timeout", [0, -0.5, math.nan])
def test_bad_per_call_timeout(calc: Spirit, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        calc.call_sync("add", 1, 2, timeout=timeout)
    assert calc.call_sync("add", 1, 2) == 3


def test_an_infinite_timeout_is_no_deadline(calc: Spirit) -> None:
    assert calc.call_sync("add", 1, 2, timeout=math.inf) == 3


@pytest.mark.parametrize("fuel", [-1, 1.5, "1000"])
def test_bad_fuel(fuel: Any) -> None:
    with pytest.raises(ValueError, match="fuel"):
        Spirit.load_sync(CALCULATOR, fuel=fuel)


def test_v128_in_an_import_is_refused_and_internal_v128_is_fine() -> None:
    with pytest.raises(SpiritLoadError, match=r"import loa\.x"):
        Spirit.load_sync(b'(module (import "loa" "x" (func (param v128))))', cache=False)
    inner = (
        b"(module (func $h (param v128) (result v128) local.get 0)"
        b' (func (export "ok") (result i32) i32.const 7))'
    )
    assert Spirit.load_sync(inner, cache=False).call_sync("ok") == 7


def test_a_start_function_that_never_ends_is_bounded_by_the_timeout() -> None:
    wat = b"(module (func $forever (loop $l (br $l))) (start $forever))"
    started = time.monotonic()
    with pytest.raises(SpiritLoadError, match="start function ran past the timeout"):
        Spirit.load_sync(wat, cache=False, timeout=0.1)
    assert time.monotonic() - started < 1.0
