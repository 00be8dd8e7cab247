"""expose_state: a module's internal globals, memories and tables exported for reset."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo_runtime._binary import STATE_PREFIX, StateExports, _Reader, expose_state

SPIRITS = Path(__file__).parent.parent / "spirits"
ENGINE = wasmtime.Engine()

STATEFUL = """
(module
  (import "env" "log" (func $log (param i32)))
  (func $f0)
  (func $f1)
  (memory 1)
  (table 2 funcref)
  (global $g (mut i32) (i32.const 7))
  (global $k i32 (i32.const 9))
  (data (i32.const 8) "hello")
  (elem (i32.const 0) $f0 $f1)
  (func (export "bump") (global.set $g (i32.add (global.get $g) (i32.const 1))))
  (func (export "get") (result i32) (global.get $g))
)
"""


def _compile(wasm: bytes) -> wasmtime.Module:
    return wasmtime.Module(ENGINE, wasm)


def _export_kinds(module: wasmtime.Module) -> dict[str, type]:
    return {e.name: type(e.type) for e in module.exports}


def _expose_wat(wat: str) -> tuple[bytes, bytes, StateExports]:
    wasm = wasmtime.wat2wasm(wat)
    out, state = expose_state(wasm)
    return wasm, out, state


def test_internal_state_is_exported_and_live() -> None:
    _, out, state = _expose_wat(STATEFUL)
    assert state == StateExports(
        globals=(f"{STATE_PREFIX}global0",),
        memories=(f"{STATE_PREFIX}memory0",),
        tables=(f"{STATE_PREFIX}table0",),
        resettable=True,
    )
    module = _compile(out)
    kinds = _export_kinds(module)
    assert kinds[f"{STATE_PREFIX}global0"] is wasmtime.GlobalType
    assert kinds[f"{STATE_PREFIX}memory0"] is wasmtime.MemoryType
    assert kinds[f"{STATE_PREFIX}table0"] is wasmtime.TableType
    assert {"bump", "get"} <= kinds.keys()

    store = wasmtime.Store(ENGINE)
    log = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []), lambda x: None)
    instance = wasmtime.Instance(store, module, [log])
    exports = instance.exports(store)
    g = exports[state.globals[0]]
    memory = exports[state.memories[0]]
    table = exports[state.tables[0]]
    assert isinstance(g, wasmtime.Global)
    assert isinstance(memory, wasmtime.Memory)
    assert isinstance(table, wasmtime.Table)
    assert g.value(store) == 7
    exports["bump"](store)
    assert g.value(store) == 8
    g.set_value(store, 7)
    assert exports["get"](store) == 7
    assert memory.read(store, 8, 13) == b"hello"
    assert table.size(store) == 2
    assert table.get(store, 0) is not None


def test_existing_exports_keep_their_names_and_immutable_globals_are_absent() -> None:
    _, out, state = _expose_wat(
        """(module
          (memory (export "memory") 1)
          (table $t (export "tab") 1 funcref)
          (global $a (export "a") (mut i32) (i32.const 1))
          (global $k (export "k") i64 (i64.const 2))
          (global $b (mut f64) (f64.const 3))
          (global $c (export "c1") (export "c2") (mut i64) (i64.const 4)))"""
    )
    assert state.globals == ("a", f"{STATE_PREFIX}global2", "c1")
    assert state.memories == ("memory",)
    assert state.tables == ("tab",)
    assert state.resettable
    kinds = _export_kinds(_compile(out))
    assert kinds[f"{STATE_PREFIX}global2"] is wasmtime.GlobalType
    assert not any(name.startswith(STATE_PREFIX) and name != f"{STATE_PREFIX}global2"
                   for name in kinds)  # fmt: skip


def test_imports_shift_the_index_spaces() -> None:
    _, out, state = _expose_wat(
        """(module
          (import "env" "f" (func))
          (import "env" "g" (global i32))
          (import "env" "h" (global i64))
          (global (mut i32) (global.get 0)))"""
    )
    assert state.globals == (f"{STATE_PREFIX}global2",)
    assert state.resettable
    store = wasmtime.Store(ENGINE)
    module = _compile(out)
    f = wasmtime.Func(store, wasmtime.FuncType([], []), lambda: None)
    g = wasmtime.Global(store, wasmtime.GlobalType(wasmtime.ValType.i32(), False), 41)
    h = wasmtime.Global(store, wasmtime.GlobalType(wasmtime.ValType.i64(), False), 0)
    instance = wasmtime.Instance(store, module, [f, g, h])
    exported = instance.exports(store)[f"{STATE_PREFIX}global2"]
    assert isinstance(exported, wasmtime.Global)
    assert exported.value(store) == 41


def test_one_imported_immutable_global_makes_the_defined_one_global1() -> None:
    _, _, state = _expose_wat(
        """(module (import "env" "g" (global i32)) (global $m (mut i32) (i32.const 0)))"""
    )
    assert state.globals == (f"{STATE_PREFIX}global1",)


@pytest.mark.parametrize(
    ("wat", "why"),
    [
        (
            """(module (memory 1) (data "abc")
                 (func (export "drop") (data.drop 0)))""",
            "passive data",
        ),
        (
            """(module (table 1 funcref) (func $f) (elem func $f)
                 (func (export "init")
                   (table.init 0 (i32.const 0) (i32.const 0) (i32.const 1))))""",
            "passive element",
        ),
        (
            """(module (table 1 funcref) (func $f)
                 (elem funcref (ref.func $f)))""",
            "passive element",
        ),
        ("""(module (import "env" "memory" (memory 1)))""", "imported memory env.memory"),
        ("""(module (import "env" "t" (table 1 funcref)))""", "imported table env.t"),
        ("""(module (import "env" "g" (global (mut i32))))""", "imported mutable global env.g"),
        (
            """(module (global (mut i32) (i32.const 1))
                 (func (export "vudo:state:global0")))""",
            "already taken",
        ),
        ("""(module (memory i64 1))""", "64-bit memory"),
        ("""(module (global (mut v128) (v128.const i64x2 1 2)))""", "v128"),
    ],
)
def test_not_resettable(wat: str, why: str) -> None:
    wasm, out, state = _expose_wat(wat)
    assert out is wasm
    assert not state.resettable
    assert why in state.why
    assert state.globals == state.memories == state.tables == ()


def test_shared_memory_is_not_resettable() -> None:
    wasm, out, state = _expose_wat("(module (memory 1 1 shared))")
    assert out is wasm
    assert not state.resettable
    assert "shared memory 0" in state.why


def test_declarative_and_active_elements_are_fine() -> None:
    _, out, state = _expose_wat(
        """(module (table 4 funcref) (func $f)
             (elem declare func $f)
             (elem (i32.const 0) func $f)
             (elem (table 0) (i32.const 1) funcref (ref.func $f) (ref.null func))
             (elem (i32.const 3) funcref (ref.func $f))
             (func (export "r") (result funcref) (ref.func $f)))"""
    )
    assert state.resettable, state.why
    assert state.tables == (f"{STATE_PREFIX}table0",)
    _compile(out)


def test_nothing_to_add_returns_the_same_object() -> None:
    wasm, out, state = _expose_wat(
        """(module (memory (export "memory") 1) (global i32 (i32.const 3))
             (func (export "f") (result i32) (global.get 0)))"""
    )
    assert out is wasm
    assert state == StateExports(memories=("memory",), resettable=True)


def test_no_export_section_gets_one() -> None:
    wasm, out, state = _expose_wat(
        """(module (type (func)) (func $f) (memory 1) (global (mut i32) (i32.const 0))
             (start $f) (data (i32.const 0) "x"))"""
    )
    assert not _compile(wasm).exports
    assert state.resettable
    assert state.globals == (f"{STATE_PREFIX}global0",)
    assert state.memories == (f"{STATE_PREFIX}memory0",)
    kinds = _export_kinds(_compile(out))
    assert set(kinds) == {f"{STATE_PREFIX}global0", f"{STATE_PREFIX}memory0"}


def test_no_preceding_sections_inserts_after_the_header() -> None:
    # Only a custom section and an (empty) code section: the export goes first.
    _, out, state = _expose_wat("""(module (memory 1))""")
    assert state.memories == (f"{STATE_PREFIX}memory0",)
    _compile(out)
    bare = b"\0asm\x01\0\0\0" + b"\x00\x04\x03abc"  # a custom section only
    assert expose_state(bare) == (bare, StateExports())


def _sections(wasm: bytes) -> list[tuple[int, bytes]]:
    r = _Reader(wasm, 8)
    out = []
    while r.pos < r.end:
        section, size = r.byte(), r.uleb()
        out.append((section, bytes(wasm[r.pos : r.pos + size])))
        r.pos += size
    return out


@pytest.mark.parametrize(
    "wat",
    [
        STATEFUL,
        '(module (memory 1) (func $f) (start $f) (data (i32.const 0) "x"))',
        "(module (table 1 funcref) (func) (func) (elem (i32.const 0) func 1))",
    ],
)
def test_only_the_export_section_changes(wat: str) -> None:
    wasm, out, _ = _expose_wat(wat)
    before, after = _sections(wasm), _sections(out)
    assert [s for s in after if s[0] != 7] == [s for s in before if s[0] != 7]
    ids = [section for section, _ in after]
    standard = [i for i in ids if i]
    order = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]
    assert standard == sorted(standard, key=order.index)
    assert ids.count(7) == 1
    exports = _Reader(dict(after)[7])
    assert exports.uleb() == len(_compile(out).exports)


@pytest.mark.parametrize(
    "wasm",
    [
        b"",
        b"garbage!",
        b"\0asm",
        b"\0asm\x0d\0\x01\0",  # a component
        b"\0asm\x01\0\0\0\x06\x05\x01\x7f\x01\x41",  # truncated global section
        b"\0asm\x01\0\0\0\x06\x7f",  # section size past the end
        b"\0asm\x01\0\0\0\x02\x03\x01\x00\x00",  # truncated import
        b"\0asm\x01\0\0\0\x06\x06\x01\x7f\x01\x99\x00\x0b",  # bad init opcode
        b"\0asm\x01\0\0\0\x0b\x07\x01\x00\x41\x00\x0b\x05ab",  # data runs past the end
        b"\0asm\x01\0\0\0\x05\x03\x01\x10\x01",  # unknown limits flags
        b"\0asm\x01\0\0\0\x06\x01\x00\x06\x01\x00",  # duplicate section
        b"\0asm\x01\0\0\0\x07\x02\x01\x05",  # truncated export
        b"\0asm\x01\0\0\0\xff\x00",  # unknown section
        b"\0asm\x01\0\0\0\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # LEB too long
    ],
)
def test_unreadable_is_not_resettable(wasm: bytes) -> None:
    out, state = expose_state(wasm)
    assert out is wasm
    assert not state.resettable
    assert state.why.startswith("unreadable: ")


def test_truncations_of_a_real_module_never_raise() -> None:
    wasm = wasmtime.wat2wasm(STATEFUL)
    for n in range(len(wasm)):
        out, state = expose_state(wasm[:n])
        if not state.resettable:
            assert out == wasm[:n]


def test_extended_const_and_reference_globals() -> None:
    _, out, state = _expose_wat(
        """(module
          (import "env" "base" (global $base i32))
          (global $a (mut i32) (i32.add (global.get $base) (i32.mul (i32.const 2) (i32.const 3))))
          (global $b (mut i64) (i64.sub (i64.const 100) (i64.const -1)))
          (global $c (mut funcref) (ref.null func))
          (global $d (mut externref) (ref.null extern))
          (global $e (mut f32) (f32.const 1.5))
          (global $f f64 (f64.const 2.5))
          (global $h (mut funcref) (ref.func $fn))
          (func $fn))"""
    )
    assert state.resettable, state.why
    assert state.globals == tuple(f"{STATE_PREFIX}global{i}" for i in (1, 2, 3, 4, 5, 7))
    module = _compile(out)
    store = wasmtime.Store(ENGINE)
    base = wasmtime.Global(store, wasmtime.GlobalType(wasmtime.ValType.i32(), False), 10)
    exports = wasmtime.Instance(store, module, [base]).exports(store)
    values = {}
    for name in state.globals:
        g = exports[name]
        assert isinstance(g, wasmtime.Global)
        values[name] = g.value(store)
    assert values[f"{STATE_PREFIX}global1"] == 16
    assert values[f"{STATE_PREFIX}global2"] == 101
    # wasmtime-py hands a null reference back wrapped in a Val, not as None.
    assert getattr(values[f"{STATE_PREFIX}global3"], "value", 0) is None
    assert getattr(values[f"{STATE_PREFIX}global4"], "value", 0) is None
    assert values[f"{STATE_PREFIX}global5"] == 1.5
    assert isinstance(values[f"{STATE_PREFIX}global7"], wasmtime.Func)


def test_table_with_an_init_expression() -> None:
    _, out, state = _expose_wat(
        """(module (func $f) (table 2 funcref (ref.func $f)) (table 1 externref)
             (global (mut i32) (i32.const 0)))"""
    )
    assert state.resettable, state.why
    assert state.tables == (f"{STATE_PREFIX}table0", f"{STATE_PREFIX}table1")
    assert state.globals == (f"{STATE_PREFIX}global0",)
    _compile(out)


def test_v128_const_in_an_immutable_global_is_skipped() -> None:
    _, out, state = _expose_wat(
        """(module (global v128 (v128.const i32x4 1 2 3 4)) (global (mut i32) (i32.const 5)))"""
    )
    assert state.resettable
    assert state.globals == (f"{STATE_PREFIX}global1",)
    _compile(out)


def test_custom_sections_are_kept_in_place() -> None:
    wasm = wasmtime.wat2wasm("""(module (global $g (mut i32) (i32.const 1)) (func $f))""")
    assert b"name" in wasm  # wat2wasm writes a name section at the end
    out, state = expose_state(wasm)
    assert out.endswith(wasm[wasm.index(b"\x04name") - 2 :])
    assert state.globals == (f"{STATE_PREFIX}global0",)
    _compile(out)


@pytest.mark.parametrize("path", sorted(SPIRITS.glob("*.wasm")), ids=lambda p: p.stem)
def test_real_spirits(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wasm = path.read_bytes()
    out, state = expose_state(wasm)
    module = _compile(out)
    names = {e.name for e in module.exports}
    assert set(state.globals + state.memories + state.tables) <= names
    original = {e.name for e in _compile(wasm).exports}
    assert original <= names
    with capsys.disabled():
        print(f"\n{path.stem}: resettable={state.resettable} {state.why} {state}")
    assert state.resettable or "passive" in state.why, state.why


def test_a_big_module_is_fast(capsys: pytest.CaptureFixture[str]) -> None:
    data = "\\00" * (1 << 20)
    wat = f"""(module (memory 17) (global (mut i32) (i32.const 0))
                (data (i32.const 0) "{data}")
                (func (export "f") (result i32) (global.get 0)))"""
    wasm = wasmtime.wat2wasm(wat)
    assert len(wasm) > 1 << 20
    expose_state(wasm)
    start = time.perf_counter()
    for _ in range(20):
        out, state = expose_state(wasm)
    per_call = (time.perf_counter() - start) / 20
    assert state.resettable
    with capsys.disabled():
        print(f"\nexpose_state on {len(wasm)} bytes: {per_call * 1e6:.0f} us")
    assert per_call < 0.005, per_call
    _compile(out)


def test_gc_constant_expressions_are_skipped() -> None:
    wasm = wasmtime.wat2wasm(
        """(module (type $s (struct (field i32))) (type $a (array i8))
             (global (ref null $s) (struct.new $s (i32.const 1)))
             (global (ref $a) (array.new_fixed $a 2 (i32.const 1) (i32.const 2)))
             (global i31ref (ref.i31 (i32.const 5)))
             (global (mut i32) (i32.const 0)))"""
    )
    out, state = expose_state(wasm)
    assert state.resettable, state.why
    assert state.globals == (f"{STATE_PREFIX}global3",)
    assert out is not wasm


def test_gc_reference_state_is_not_resettable() -> None:
    wasm = wasmtime.wat2wasm(
        """(module (type $s (struct (field (mut i32))))
             (global (mut (ref null $s)) (ref.null $s)))"""
    )
    out, state = expose_state(wasm)
    assert out is wasm
    assert not state.resettable
    assert "global 0 of type (ref null 0)" in state.why


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutations_never_raise_and_never_break_a_valid_module(data: st.DataObject) -> None:
    wasm = bytearray(wasmtime.wat2wasm(STATEFUL))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(8, len(wasm) - 1))
        wasm[i] = data.draw(st.integers(0, 255))
    original = bytes(wasm)
    out, state = expose_state(original)
    if out is original:
        return
    assert state.resettable
    try:
        wasmtime.Module.validate(ENGINE, original)
    except wasmtime.WasmtimeError:
        return
    wasmtime.Module.validate(ENGINE, out)
