"""The sample Spirits in ``spirits/``: built artefacts are current, and they behave.

Behaviour is checked through the public wasmtime API directly, independent of
``vudo_runtime``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime

SPIRITS_DIR = Path(__file__).resolve().parent.parent / "spirits"
WAT_FILES = sorted(SPIRITS_DIR.glob("*.wat"))
EXPECTED = {"calculator", "hello_world", "counter", "strings", "loops", "geometry"}


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


class Spirit:
    """A wasmtime instance of one sample Spirit, with small helpers."""

    def __init__(self, name: str, imports: dict[str, Callable[..., Any]] | None = None) -> None:
        self.engine = wasmtime.Engine()
        self.store = wasmtime.Store(self.engine)
        module = wasmtime.Module.from_file(self.engine, str(SPIRITS_DIR / f"{name}.wasm"))
        linker = wasmtime.Linker(self.engine)
        for imp in module.imports:
            assert imp.name is not None and isinstance(imp.type, wasmtime.FuncType)
            func = (imports or {})[imp.name]
            linker.define_func(imp.module, imp.name, imp.type, func)
        self.instance = linker.instantiate(self.store, module)
        self.exports = self.instance.exports(self.store)

    def call(self, name: str, *args: Any) -> Any:
        func = self.exports[name]
        assert isinstance(func, wasmtime.Func)
        return func(self.store, *args)

    @property
    def memory(self) -> wasmtime.Memory:
        mem = self.exports["memory"]
        assert isinstance(mem, wasmtime.Memory)
        return mem

    def read(self, ptr: int, size: int) -> bytes:
        return bytes(self.memory.read(self.store, ptr, ptr + size))

    def read_string(self, ptr: int) -> bytes:
        """The bytes of the DOL length-prefixed string at ``ptr``."""
        (length,) = struct.unpack("<I", self.read(ptr, 4))
        return self.read(ptr + 4, length)


# --- artefacts -----------------------------------------------------------------


def test_all_sample_spirits_present() -> None:
    assert set(_ids(WAT_FILES)) >= EXPECTED


@pytest.mark.parametrize("wat", WAT_FILES, ids=_ids(WAT_FILES))
def test_wasm_is_built_from_wat(wat: Path) -> None:
    wasm = wat.with_suffix(".wasm")
    assert wasm.is_file(), f"{wasm.name} missing: run python spirits/build.py"
    fresh = bytes(wasmtime.wat2wasm(wat.read_text(encoding="utf-8")))
    assert wasm.read_bytes() == fresh, f"{wasm.name} stale: run python spirits/build.py"


@pytest.mark.parametrize("wat", WAT_FILES, ids=_ids(WAT_FILES))
def test_dol_declaration_present(wat: Path) -> None:
    dol = wat.with_suffix(".dol")
    assert dol.is_file(), f"{dol.name} missing"
    assert "///" in dol.read_text(encoding="utf-8")


@pytest.mark.parametrize("wat", WAT_FILES, ids=_ids(WAT_FILES))
def test_wasm_validates(wat: Path) -> None:
    engine = wasmtime.Engine()
    wasmtime.Module.validate(engine, wat.with_suffix(".wasm").read_bytes())


# --- calculator ----------------------------------------------------------------


def test_calculator_arithmetic() -> None:
    s = Spirit("calculator")
    assert s.call("add", 40, 2) == 42
    assert s.call("sub", 2, 40) == -38
    assert s.call("mul", -6, 7) == -42
    assert s.call("div", -7, 2) == -3
    assert s.call("neg", 5) == -5
    assert s.call("average", 1.0, 2.0) == 1.5
    assert s.call("noop") is None
    assert s.call("is_even", 10) == 1
    assert s.call("is_even", -3) == 0


def test_calculator_div_by_zero_traps() -> None:
    s = Spirit("calculator")
    with pytest.raises(wasmtime.Trap):
        s.call("div", 1, 0)


def test_calculator_divmod_returns_two_values() -> None:
    s = Spirit("calculator")
    assert s.call("divmod", 17, 5) == [3, 2]


def test_calculator_has_no_memory_and_no_imports() -> None:
    s = Spirit("calculator")
    module = wasmtime.Module.from_file(s.engine, str(SPIRITS_DIR / "calculator.wasm"))
    assert module.imports == []
    assert "memory" not in s.exports


# --- hello_world ---------------------------------------------------------------


def test_hello_world_greet_calls_vudo_print() -> None:
    calls: list[tuple[int, int]] = []
    s = Spirit("hello_world", {"vudo_print": lambda ptr, length: calls.append((ptr, length))})
    s.call("greet")
    assert calls == [(4, 13)]
    assert s.read(4, 13) == b"Hello, World!"
    assert s.read_string(0) == b"Hello, World!"


def test_hello_world_greet_name_prints_the_name() -> None:
    printed: list[bytes] = []
    holder: dict[str, Spirit] = {}

    def vudo_print(ptr: int, length: int) -> None:
        printed.append(holder["s"].read(ptr, length))

    s = Spirit("hello_world", {"vudo_print": vudo_print})
    holder["s"] = s
    name = "Zoë".encode()
    ptr = 1024
    s.memory.write(s.store, struct.pack("<I", len(name)) + name, ptr)
    s.call("greet_name", ptr)
    assert printed == [name]


def test_hello_world_import_is_from_loa() -> None:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(SPIRITS_DIR / "hello_world.wasm"))
    assert [(i.module, i.name) for i in module.imports] == [("loa", "vudo_print")]


# --- counter -------------------------------------------------------------------


def test_counter_increment() -> None:
    s = Spirit("counter")
    ptr = s.call("new_Counter", 5)
    assert s.call("Counter.increment", ptr) == 6
    assert s.read(ptr, 8) == (6).to_bytes(8, "little")
    assert s.call("Counter.get_value", ptr) == 6
    assert s.call("Counter.add", ptr, 10) == 16
    assert s.call("Counter.get_value", ptr) == 6
    assert s.call("add_numbers", 2, 3) == 5


def test_counter_instances_are_distinct_and_aligned() -> None:
    s = Spirit("counter")
    a = s.call("new_Counter", 1)
    b = s.call("new_Counter", 2)
    assert a != b
    assert a >= 1024 and b >= 1024
    assert a % 8 == 0 and b % 8 == 0
    assert s.call("Counter.get_value", a) == 1
    assert s.call("Counter.get_value", b) == 2


def test_counter_allocator_is_not_exported() -> None:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(SPIRITS_DIR / "counter.wasm"))
    names = {e.name for e in module.exports}
    assert names == {
        "memory",
        "new_Counter",
        "Counter.increment",
        "Counter.get_value",
        "Counter.add",
        "add_numbers",
    }


def test_counter_heap_exhaustion_returns_zero() -> None:
    s = Spirit("counter")
    capacity = (65536 - 1024) // 8
    for _ in range(capacity):
        assert s.call("new_Counter", 0) != 0
    assert s.call("new_Counter", 0) == 0
    assert s.memory.size(s.store) == 1


# --- strings -------------------------------------------------------------------


def test_strings_literals() -> None:
    s = Spirit("strings")
    assert s.call("greeting") == 0
    assert s.read_string(0).decode() == "hello"
    assert s.read_string(s.call("other")).decode() == "wörld"
    assert s.call("str_len", 16) == 6
    assert s.call("first_byte", 0) == ord("h")
    assert s.call("checksum", 0) == sum(b"hello")
    assert s.call("echo", 16) == 16


def test_strings_upper() -> None:
    s = Spirit("strings")
    ptr = s.call("upper", 0)
    assert ptr >= 1024 and ptr % 4 == 0
    assert s.read_string(ptr).decode() == "HELLO"
    assert s.read_string(s.call("upper", 16)).decode() == "WöRLD"


def test_strings_invalid_utf8() -> None:
    s = Spirit("strings")
    raw = s.read_string(s.call("invalid_utf8"))
    assert raw == b"\xff\xfe"
    with pytest.raises(UnicodeDecodeError):
        raw.decode()


# --- loops ---------------------------------------------------------------------


def test_loops_fib_and_sums() -> None:
    s = Spirit("loops")
    assert s.call("fib", 10) == 55
    assert s.call("sum_to", 100) == 5050
    assert isinstance(s.call("burn", 1000), int)


def test_loops_grow_and_traps() -> None:
    s = Spirit("loops")
    assert s.call("grow_memory", 1) == 1
    assert s.memory.size(s.store) == 2
    with pytest.raises(wasmtime.Trap):
        s.call("oob_read")
    with pytest.raises(wasmtime.Trap):
        s.call("unreachable")


# --- geometry ------------------------------------------------------------------


def test_geometry_point_layout() -> None:
    s = Spirit("geometry")
    p = s.call("new_Point", 3, -4)
    assert p % 8 == 0 and p >= 1024
    assert struct.unpack("<qq", s.read(p, 16)) == (3, -4)
    assert s.call("Point.sum", p) == -1
    assert s.call("Point.scale", p, 10) is None
    assert struct.unpack("<qq", s.read(p, 16)) == (30, -40)


def test_geometry_mixed_layout() -> None:
    s = Spirit("geometry")
    m = s.call("new_Mixed", 7, 1, 0.5)
    assert m % 8 == 0
    assert struct.unpack("<iid", s.read(m, 16)) == (7, 1, 0.5)
    assert s.call("Mixed.describe", m) == 8.5
