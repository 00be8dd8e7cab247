"""MemoryManager against real wasmtime memories: bounds, growth, allocation, strings, genes."""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import itertools
import math
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vudo_runtime import (
    HEAP_END,
    GeneLayout,
    LayoutError,
    MemoryAccessError,
    MemoryClosedError,
    MemoryManager,
    Spirit,
    VudoError,
)
from vudo_runtime import memory as memory_module

PAGE = 65536
SPIRITS = Path(__file__).resolve().parent.parent / "spirits"

#: A DOL-shaped module: 1..4 pages, a string literal at offset 0, and guest helpers
#: that read and write memory the way compiled code does.
PROBE_WAT = r"""
(module
  (memory (export "memory") 1 4)
  (data (i32.const 0) "\05\00\00\00hello\00\00\00")
  (func (export "load_i32") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "load_u8") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "load_i64") (param i32) (result i64) (i64.load (local.get 0)))
  (func (export "load_f32") (param i32) (result f32) (f32.load (local.get 0)))
  (func (export "load_f64") (param i32) (result f64) (f64.load (local.get 0)))
  (func (export "store_i64") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "store_i32") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "point_sum") (param i32) (result i64)
    (i64.add (i64.load (local.get 0)) (i64.load offset=8 (local.get 0))))
)
"""

#: A guest with an exported bump allocator (DOL's algorithm) and a counting free.
ALLOC_WAT = r"""
(module
  (memory (export "memory") 1 4)
  (global $heap (mut i32) (i32.const 1024))
  (global $frees (mut i32) (i32.const 0))
  (global $freed_size (mut i32) (i32.const 0))
  (func (export "alloc") (param $size i32) (param $align i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.xor (i32.sub (local.get $align) (i32.const 1)) (i32.const -1))))
    (if (i32.gt_u (i32.add (local.get $ptr) (local.get $size)) (i32.const 65536))
      (then (return (i32.const 0))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (local.get $ptr))
  (func (export "free") (param i32 i32 i32)
    (global.set $frees (i32.add (global.get $frees) (i32.const 1)))
    (global.set $freed_size (local.get 1)))
  (func (export "frees") (result i32) (global.get $frees))
  (func (export "freed_size") (result i32) (global.get $freed_size))
  (func (export "heap") (result i32) (global.get $heap))
)
"""

_ENGINE = wasmtime.Engine()


def _moving_engine() -> wasmtime.Engine:
    """An engine whose memories reserve nothing ahead, so every growth moves them."""
    config = wasmtime.Config()
    config.memory_reservation = 0
    config.memory_reservation_for_growth = 0
    config.memory_guard_size = 0
    return wasmtime.Engine(config)


_MOVING_ENGINE = _moving_engine()
_MODULES: dict[tuple[int, str], wasmtime.Module] = {}


def _module(wat: str, engine: wasmtime.Engine = _ENGINE) -> wasmtime.Module:
    module = _MODULES.get((id(engine), wat))
    if module is None:
        module = _MODULES[id(engine), wat] = wasmtime.Module(engine, bytes(wasmtime.wat2wasm(wat)))
    return module


class Guest:
    """One instance: its store, raw memory, exports (as plain callables) and a MemoryManager."""

    def __init__(
        self,
        wat: str = PROBE_WAT,
        store: wasmtime.Store | None = None,
        imports: list[Any] | None = None,
        **kw: Any,
    ) -> None:
        self.store = store or wasmtime.Store(_ENGINE)
        module = _module(wat, self.store.engine)
        self.instance = wasmtime.Instance(self.store, module, imports or [])
        exports = self.instance.exports(self.store)
        self.memory: wasmtime.Memory = exports["memory"]  # type: ignore[assignment]
        kw.setdefault("spirit", "probe")
        self.mm = MemoryManager(self.store, self.memory, **kw)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        func = self.instance.exports(self.store)[name]
        assert isinstance(func, wasmtime.Func)
        return lambda *args: func(self.store, *args)


def mem_module(min_pages: int, max_pages: int | None) -> str:
    limits = f"{min_pages} {max_pages}" if max_pages is not None else f"{min_pages}"
    return f'(module (memory (export "memory") {limits}))'


@pytest.fixture(params=["raw", "public"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test on the raw-bindings fast path and on the public wasmtime API."""
    if request.param == "public":
        monkeypatch.setattr(memory_module, "_raw_data", None)
    yield request.param


@pytest.fixture
def guest(path: str) -> Guest:
    g = Guest()
    assert (g.mm._mref is not None) == (path == "raw")
    return g


@pytest.fixture
def mm(guest: Guest) -> MemoryManager:
    return guest.mm


# -- typed reads and writes ----------------------------------------------------------------

SCALARS = [
    # kind, size, lowest, highest
    ("i8", 1, -(2**7), 2**7 - 1),
    ("u8", 1, 0, 2**8 - 1),
    ("i16", 2, -(2**15), 2**15 - 1),
    ("u16", 2, 0, 2**16 - 1),
    ("i32", 4, -(2**31), 2**31 - 1),
    ("u32", 4, 0, 2**32 - 1),
    ("i64", 8, -(2**63), 2**63 - 1),
    ("u64", 8, 0, 2**64 - 1),
]
FORMATS = {"i8": "<b", "u8": "<B", "i16": "<h", "u16": "<H", "i32": "<i", "u32": "<I"}
FORMATS |= {"i64": "<q", "u64": "<Q", "f32": "<f", "f64": "<d"}


@pytest.mark.parametrize(("kind", "size", "lo", "hi"), SCALARS)
def test_integer_edges_round_trip(
    mm: MemoryManager, kind: str, size: int, lo: int, hi: int
) -> None:
    read, write = getattr(mm, f"read_{kind}"), getattr(mm, f"write_{kind}")
    for value in (lo, hi, 0, 1, lo + 1, hi - 1):
        write(2048, value)
        assert read(2048) == value
        assert mm.read_bytes(2048, size) == struct.pack(FORMATS[kind], value)  # little-endian


@pytest.mark.parametrize(("kind", "size", "lo", "hi"), SCALARS)
def test_integer_out_of_range_is_an_error(
    mm: MemoryManager, kind: str, size: int, lo: int, hi: int
) -> None:
    write = getattr(mm, f"write_{kind}")
    mm.write_bytes(2048, b"\xaa" * 8)
    for bad in (lo - 1, hi + 1):
        with pytest.raises(LayoutError, match=rf"cannot write {bad} .* as {kind}"):
            write(2048, bad)
    with pytest.raises(LayoutError):
        write(2048, 1.5)
    assert mm.read_bytes(2048, 8) == b"\xaa" * 8  # nothing was written


def test_signed_and_unsigned_views_of_the_same_bytes(mm: MemoryManager) -> None:
    mm.write_u32(64, 0xFFFFFFFF)
    assert mm.read_i32(64) == -1
    mm.write_i64(64, -2)
    assert mm.read_u64(64) == 2**64 - 2
    mm.write_u8(64, 0x80)
    assert mm.read_i8(64) == -128
    mm.write_i16(64, -1)
    assert mm.read_u16(64) == 0xFFFF


def test_floats(mm: MemoryManager) -> None:
    for value in (0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, 3.4028234663852886e38):
        mm.write_f32(128, value)
        assert mm.read_f32(128) == value
    mm.write_f32(128, 0.1)
    assert mm.read_f32(128) == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    for value in (0.1, 1e308, -5e-324, math.inf):
        mm.write_f64(128, value)
        assert mm.read_f64(128) == value
    mm.write_f64(128, math.nan)
    assert math.isnan(mm.read_f64(128))
    mm.write_f64(128, 7)  # an int is fine for a float
    assert mm.read_f64(128) == 7.0
    with pytest.raises(LayoutError, match="f32"):
        mm.write_f32(128, 1e300)


def test_host_writes_are_what_the_guest_loads(guest: Guest) -> None:
    mm = guest.mm
    mm.write_i32(100, -123456)
    assert guest.load_i32(100) == -123456
    mm.write_i64(200, 2**62 + 7)
    assert guest.load_i64(200) == 2**62 + 7
    mm.write_f64(300, 2.5)
    assert guest.load_f64(300) == 2.5
    mm.write_f32(304, -0.5)
    assert guest.load_f32(304) == -0.5
    mm.write_u8(400, 255)
    assert guest.load_u8(400) == 255
    guest.store_i64(512, -42)
    assert mm.read_i64(512) == -42
    guest.store_i32(520, 0x7F000001)
    assert mm.read_u32(520) == 0x7F000001


def test_bytes_round_trip_and_views(guest: Guest) -> None:
    mm = guest.mm
    mm.write_bytes(1000, b"abc")
    mm.write_bytes(1003, bytearray(b"def"))
    mm.write_bytes(1006, memoryview(b"ghi"))
    mm.write_bytes(1009, memoryview(struct.pack("<2h", 1, 2)).cast("h"))
    assert mm.read_bytes(1000, 13) == b"abcdefghi\x01\x00\x02\x00"
    assert mm.read_bytes(1000, 0) == b""
    mm.write_bytes(1000, b"")
    view = mm.view(1000, 4)
    assert bytes(view) == b"abcd"
    assert not view.readonly
    view[0:4] = b"WXYZ"
    assert guest.load_i32(1000) == int.from_bytes(b"WXYZ", "little")
    guest.store_i32(1000, 0x01020304)
    assert bytes(view) == b"\x04\x03\x02\x01"  # live, zero-copy
    assert len(mm.view(mm.size, 0)) == 0


def test_size_pages_and_properties(mm: MemoryManager) -> None:
    assert (mm.size, mm.pages, mm.page_size, mm.max_pages) == (PAGE, 1, PAGE, 4)
    assert mm.spirit == "probe"
    assert mm.host_base == PAGE
    assert "probe" in repr(mm)


# -- bounds --------------------------------------------------------------------------------


READERS = [(f"read_{k}", s) for k, s, _, _ in SCALARS] + [("read_f32", 4), ("read_f64", 8)]


@pytest.mark.parametrize(("reader", "n"), READERS)
def test_every_reader_is_checked_at_the_edge(mm: MemoryManager, reader: str, n: int) -> None:
    read = getattr(mm, reader)
    read(PAGE - n)  # the last slot that fits
    for ptr in (PAGE - n + 1, PAGE, -1, -n, 2**32, 2**64, 2**100):
        with pytest.raises(MemoryAccessError):
            read(ptr)


@pytest.mark.parametrize(("reader", "n"), READERS)
def test_every_writer_is_checked_at_the_edge(mm: MemoryManager, reader: str, n: int) -> None:
    write = getattr(mm, reader.replace("read_", "write_"))
    write(PAGE - n, 1)
    for ptr in (PAGE - n + 1, -1, 2**64):
        with pytest.raises(MemoryAccessError):
            write(ptr, 1)


def test_byte_ranges_are_checked(mm: MemoryManager) -> None:
    assert mm.read_bytes(PAGE - 3, 3) == b"\0\0\0"
    assert mm.read_bytes(PAGE, 0) == b""
    for ptr, n in [(PAGE - 3, 4), (PAGE + 1, 0), (0, PAGE + 1), (-1, 1), (1, -1), (2**63, 2**63)]:
        with pytest.raises(MemoryAccessError):
            mm.read_bytes(ptr, n)
        with pytest.raises(MemoryAccessError):
            mm.view(ptr, n)
    with pytest.raises(MemoryAccessError):
        mm.write_bytes(PAGE - 2, b"abc")
    with pytest.raises(MemoryAccessError):
        mm.write_bytes(-3, b"abc")
    assert mm.read_bytes(PAGE - 3, 3) == b"\0\0\0"


def test_error_message_says_who_where_and_how_big(mm: MemoryManager) -> None:
    with pytest.raises(MemoryAccessError) as info:
        mm.read_bytes(PAGE - 2, 10)
    text = str(info.value)
    assert "Spirit 'probe'" in text
    assert f"ptr={PAGE - 2:#x}" in text
    assert "length=10" in text
    assert f"{PAGE} bytes (1 pages)" in text
    assert isinstance(info.value, VudoError) and isinstance(info.value, IndexError)


def test_negative_pointer_hint(mm: MemoryManager) -> None:
    with pytest.raises(MemoryAccessError, match=r"0xffffff00"):
        mm.read_i32(-256)


def test_growth_makes_the_new_region_valid(guest: Guest) -> None:
    mm = guest.mm
    with pytest.raises(MemoryAccessError):
        mm.read_i64(PAGE)
    assert mm.grow(1) == 1
    assert (mm.pages, mm.size) == (2, 2 * PAGE)
    mm.write_i64(2 * PAGE - 8, 99)
    assert mm.read_i64(2 * PAGE - 8) == 99
    assert guest.load_i64(2 * PAGE - 8) == 99
    with pytest.raises(MemoryAccessError):
        mm.read_i64(2 * PAGE - 7)


def test_growth_by_the_guest_is_seen(guest: Guest) -> None:
    mm = guest.mm
    mm.read_u8(PAGE - 1)  # the manager has seen a 1-page memory
    assert guest.grow(2) == 1  # memory.grow inside wasm, not through the manager
    guest.store_i64(3 * PAGE - 8, 1234)
    assert mm.read_i64(3 * PAGE - 8) == 1234
    assert mm.pages == 3


def test_grow_past_the_maximum(mm: MemoryManager) -> None:
    mm.grow(3)
    with pytest.raises(MemoryAccessError, match=r"cannot grow memory by 1 page\(s\) from 4 pages"):
        mm.grow(1)
    with pytest.raises(MemoryAccessError, match="negative"):
        mm.grow(-1)
    assert mm.grow(0) == 4


def test_grow_past_a_store_limit(path: str) -> None:
    store = wasmtime.Store(_ENGINE)
    store.set_limits(memory_size=2 * PAGE)
    g = Guest(store=store)
    assert g.mm.grow(1) == 1
    with pytest.raises(MemoryAccessError, match="Store's memory limit"):
        g.mm.grow(1)


def test_memory_that_moves_when_it_grows(path: str) -> None:
    g = Guest(store=wasmtime.Store(_MOVING_ENGINE))
    mm = g.mm

    def base() -> int:
        return ctypes.cast(g.memory.data_ptr(g.store), ctypes.c_void_p).value or 0

    mm.write_i64(PAGE - 8, 77)
    view_before = mm.view(0, 8)
    first = base()
    mm.grow(1)  # through the manager
    assert base() != first
    assert mm.read_i64(PAGE - 8) == 77
    mm.write_i64(2 * PAGE - 8, 78)
    second = base()
    assert g.grow(1) == 2  # behind the manager's back
    assert base() != second
    assert mm.read_i64(2 * PAGE - 8) == 78
    assert g.load_i64(2 * PAGE - 8) == 78
    mm.write_i64(3 * PAGE - 8, 79)
    assert g.load_i64(3 * PAGE - 8) == 79
    assert mm.read_i64(PAGE - 8) == 77
    del view_before  # documented as invalid after growth; never touched again


def test_host_allocation_that_moves_the_memory(path: str) -> None:
    g = Guest(store=wasmtime.Store(_MOVING_ENGINE))
    mm = g.mm
    mm.write_i64(PAGE - 8, 77)
    first = ctypes.cast(g.memory.data_ptr(g.store), ctypes.c_void_p).value
    p = mm.write_string("moved " * 30_000)  # grows (and moves) while allocating
    assert ctypes.cast(g.memory.data_ptr(g.store), ctypes.c_void_p).value != first
    assert mm.pages == 4
    assert mm.read_string(p) == "moved " * 30_000
    assert mm.read_i64(PAGE - 8) == 77
    assert g.load_i64(PAGE - 8) == 77


def test_store_can_be_swapped_for_a_caller(path: str) -> None:
    wat = r"""
    (module
      (import "host" "log" (func $log (param i32)))
      (memory (export "memory") 1 4)
      (data (i32.const 0) "\02\00\00\00hi")
      (func (export "run") (param i32) (call $log (local.get 0)) (call $log (i32.const 0)))
    )
    """
    seen: list[str] = []
    holder: dict[str, MemoryManager] = {}

    def log(caller: wasmtime.Caller, ptr: int) -> None:
        mm = holder["mm"]
        saved, mm._store = mm._store, caller  # what the runtime does around a host call
        try:
            seen.append(mm.read_string(ptr))
            seen.append(mm.read_string(mm.write_string("from host")))
        finally:
            mm._store = saved

    store = wasmtime.Store(_ENGINE)
    functype = wasmtime.FuncType([wasmtime.ValType.i32()], [])
    host = wasmtime.Func(store, functype, log, access_caller=True)
    g = Guest(wat, store=store, imports=[host])
    holder["mm"] = g.mm
    p = g.mm.write_string("héllo")
    g.run(p)
    assert seen == ["héllo", "from host", "hi", "from host"]
    # only self._store is used: a stale Caller in it fails instead of being bypassed
    caller_box: list[wasmtime.Caller] = []
    host2 = wasmtime.Func(
        store, functype, lambda caller, ptr: caller_box.append(caller), access_caller=True
    )
    g2 = Guest(wat, store=store, imports=[host2])
    g2.run(0)
    g2.mm._store = caller_box[0]
    with pytest.raises(ValueError, match="no longer valid"):
        g2.mm.read_u8(0)


def test_memory_without_pages() -> None:
    g = Guest(mem_module(0, 2))
    mm = g.mm
    assert mm.size == 0
    assert mm.read_bytes(0, 0) == b""
    with pytest.raises(MemoryAccessError):
        mm.read_u8(0)
    ptr = mm.alloc(16)
    assert ptr >= 8 and mm.size == PAGE
    mm.write_i64(ptr, 5)
    assert mm.read_i64(ptr) == 5


# -- host allocation -----------------------------------------------------------------------


def test_host_allocations_start_at_host_base_and_are_aligned(mm: MemoryManager) -> None:
    assert mm.host_base == PAGE >= HEAP_END
    a = mm.alloc(3, 1)
    b = mm.alloc(10, 16)
    c = mm.alloc(0)
    assert a == PAGE
    assert b % 16 == 0 and b >= a + 3
    assert c % 8 == 0 and (c >= b + 10 or c + 8 <= b) and c >= a + 3  # may fill the gap
    assert mm.pages == 2  # the first host allocation grew the 1-page memory
    mm.write_bytes(a, b"abc")
    mm.write_bytes(b, b"0123456789")
    assert mm.read_bytes(a, 3) == b"abc"


def test_host_allocation_grows_by_whole_pages(mm: MemoryManager) -> None:
    p = mm.alloc(PAGE + 1)
    assert p == PAGE
    assert mm.pages == 3
    mm.write_u8(p + PAGE, 7)
    q = mm.alloc(8)
    assert q >= p + PAGE + 1
    assert mm.pages == 3


def test_exhaustion_at_max_pages(mm: MemoryManager) -> None:
    mm.alloc(3 * PAGE)  # pages 1..3 of 4
    with pytest.raises(MemoryAccessError) as info:
        mm.alloc(1024)
    text = str(info.value)
    assert "cannot allocate 1024 bytes" in text and "limit: 4 pages" in text
    assert "Spirit 'probe'" in text
    assert isinstance(info.value.__cause__, MemoryAccessError)
    mm.reset()
    assert mm.alloc(1024) == PAGE


def test_free_and_reuse(mm: MemoryManager) -> None:
    a = mm.alloc(100)
    b = mm.alloc(100)
    c = mm.alloc(100)
    mm.free(b)
    assert mm.alloc(100) == b  # the hole is reused
    mm.free(c)
    assert mm.alloc(64) == c  # the top block comes back to the bump pointer
    mm.free(a)
    mm.free(b)
    assert mm.alloc(200) == a  # two adjacent holes coalesce
    assert mm.allocated == 200 + 64


def test_lifo_allocation_does_not_creep(mm: MemoryManager) -> None:
    first = mm.alloc(1000)
    mm.free(first)
    for _ in range(1000):
        p = mm.alloc(1000)
        assert p == first
        mm.free(p)
    assert mm.pages == 2


def test_bad_free(mm: MemoryManager) -> None:
    p = mm.alloc(8)
    mm.free(p)
    with pytest.raises(MemoryAccessError, match=r"free\(0x10000\): not a live allocation"):
        mm.free(p)
    with pytest.raises(MemoryAccessError, match="not a live allocation"):
        mm.free(1234)


def test_reset_frees_everything(mm: MemoryManager) -> None:
    ptrs = [mm.alloc(n) for n in (10, 20, 30)]
    mm.reset()
    assert mm.allocated == 0
    assert mm.alloc(10) == ptrs[0]
    with pytest.raises(MemoryAccessError):
        mm.free(ptrs[1])


@pytest.mark.parametrize(("size", "align"), [(-1, 8), (8, 0), (8, 3), (8, 12), (1.5, 8)])
def test_bad_alloc_arguments(mm: MemoryManager, size: Any, align: Any) -> None:
    with pytest.raises(ValueError):
        mm.alloc(size, align)


def test_explicit_host_base(path: str) -> None:
    g = Guest(host_base=3 * PAGE + 4)
    assert g.mm.host_base == 3 * PAGE + 8
    assert g.mm.alloc(8) == 3 * PAGE + 8
    assert g.mm.pages == 4
    with pytest.raises(ValueError):
        Guest(host_base=-1)


def test_host_region_never_meets_the_guest_heap(path: str) -> None:
    """The guest's bump allocator stays below HEAP_END; host allocations stay above."""
    g = Guest(ALLOC_WAT)  # the guest allocator is NOT handed to the manager here
    host = [g.mm.alloc(4000, 8) for _ in range(20)]
    guest_ptrs = []
    while (p := g.alloc(4000, 8)) != 0:
        guest_ptrs.append(p)
    assert max(guest_ptrs) + 4000 <= HEAP_END <= min(host)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 5000), st.sampled_from([1, 2, 4, 8, 16, 64])),
        max_size=60,
    )
)
def test_allocator_never_overlaps(ops: list[tuple[bool, int, int]]) -> None:
    g = Guest(mem_module(1, 64))
    mm = g.mm
    live: dict[int, tuple[int, bytes]] = {}
    for i, (do_free, size, align) in enumerate(ops):
        if do_free and live:
            ptr = sorted(live)[i % len(live)]
            n, pattern = live.pop(ptr)
            assert mm.read_bytes(ptr, n) == pattern
            mm.free(ptr)
            continue
        ptr = mm.alloc(size, align)
        assert ptr % align == 0 and ptr >= mm.host_base
        pattern = bytes([i % 251 + 1]) * size
        mm.write_bytes(ptr, pattern)
        live[ptr] = (size, pattern)
        spans = sorted((p, p + max(n, 1)) for p, (n, _) in live.items())
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    for ptr, (n, pattern) in live.items():
        assert mm.read_bytes(ptr, n) == pattern
    mm.reset()
    assert mm.alloc(8) == mm.host_base


# -- the guest's allocator ------------------------------------------------------------------


def guest_with_allocator(wat: str = ALLOC_WAT) -> Guest:
    holder: dict[str, Guest] = {}
    g = Guest(
        wat,
        guest_alloc=lambda size, align: holder["g"].alloc(size, align),
        guest_free=lambda ptr, size, align: holder["g"].free(ptr, size, align),
    )
    holder["g"] = g
    return g


def test_guest_alloc_is_used(path: str) -> None:
    g = guest_with_allocator()
    mm = g.mm
    p = mm.alloc(10, 8)
    assert p == 1024 and g.heap() == 1034
    s = mm.write_string("héllo")
    assert s == 1036 and s % 4 == 0
    assert mm.read_string(s) == "héllo"
    assert mm.pages == 1  # the host region was never touched
    mm.free(p)
    assert (g.frees(), g.freed_size()) == (1, 10)
    with pytest.raises(MemoryAccessError, match="not a live allocation"):
        mm.free(p)
    mm.reset()
    assert g.frees() == 2  # the string, freed by reset


def test_guest_alloc_failure_is_an_error(path: str) -> None:
    g = guest_with_allocator()
    with pytest.raises(MemoryAccessError, match="returned 0"):
        g.mm.alloc(PAGE)
    bad = Guest(guest_alloc=lambda size, align: 5 * PAGE)
    with pytest.raises(MemoryAccessError, match="outside the"):
        bad.mm.alloc(8)

    def trap(size: int, align: int) -> int:
        raise wasmtime.Trap("unreachable")

    broken = Guest(guest_alloc=trap)
    with pytest.raises(MemoryAccessError, match="guest allocator failed") as info:
        broken.mm.alloc(8)
    assert isinstance(info.value.__cause__, wasmtime.Trap)


def test_guest_alloc_without_free_forgets(path: str) -> None:
    g = Guest(guest_alloc=lambda size, align: 2048)
    p = g.mm.alloc(8)
    g.mm.free(p)  # nothing to call, but the pointer is no longer live
    with pytest.raises(MemoryAccessError):
        g.mm.free(p)
    with pytest.raises(ValueError, match="guest_free needs guest_alloc"):
        Guest(guest_free=lambda ptr, size, align: None)


def test_signed_guest_pointer_is_read_unsigned(path: str) -> None:
    g = Guest(mem_module(1, None), guest_alloc=lambda size, align: -8)
    with pytest.raises(MemoryAccessError, match="0xfffffff8"):
        g.mm.alloc(4)


# -- strings -----------------------------------------------------------------------------


def test_string_round_trip_and_format(guest: Guest) -> None:
    mm = guest.mm
    p = mm.write_string("héllo, wörld ✓")
    assert p % 4 == 0
    data = "héllo, wörld ✓".encode()
    assert guest.load_i32(p) == len(data)
    assert mm.read_bytes(p + 4, len(data)) == data
    assert mm.read_string(p) == "héllo, wörld ✓"


def test_pointer_zero_is_a_valid_string(mm: MemoryManager) -> None:
    assert mm.read_string(0) == "hello"  # the data segment at offset 0


def test_empty_and_large_strings(mm: MemoryManager) -> None:
    assert mm.read_string(mm.write_string("")) == ""
    big = "ü" * 90_000  # 180 KB: the host region grows to the 4-page maximum
    assert mm.read_string(mm.write_string(big)) == big
    assert mm.pages == 4


def test_invalid_utf8(mm: MemoryManager) -> None:
    mm.write_bytes(4096, struct.pack("<I", 4) + b"ab\xffc")
    with pytest.raises(
        LayoutError, match=r"invalid UTF-8 in guest string at 0x1004 \(4 bytes\)"
    ) as info:
        mm.read_string(4096)
    assert "errors='replace'" in str(info.value)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)
    assert mm.read_string(4096, errors="replace") == "ab\ufffdc"
    assert mm.read_string(4096, "ignore") == "abc"
    with pytest.raises(LayoutError, match="invalid UTF-8"):
        mm.read_str(4100, 4)
    assert mm.read_str(4100, 4, "replace") == "ab\ufffdc"


def test_string_length_prefix_past_the_end(mm: MemoryManager) -> None:
    mm.write_u32(PAGE - 8, 100)
    with pytest.raises(MemoryAccessError, match="the length prefix at 0xfff8 says 100 bytes"):
        mm.read_string(PAGE - 8)
    with pytest.raises(MemoryAccessError, match="length prefix"):
        mm.read_string(PAGE - 2)
    with pytest.raises(MemoryAccessError):
        mm.read_bytes_prefixed(PAGE - 8)
    mm.write_u32(PAGE - 8, 0xFFFFFFFF)
    with pytest.raises(MemoryAccessError):
        mm.read_string(PAGE - 8)


def test_raw_strings_for_host_functions(mm: MemoryManager) -> None:
    ptr, n = mm.write_str("grüß")
    assert n == len("grüß".encode())
    assert mm.read_str(ptr, n) == "grüß"
    assert mm.read_bytes(ptr, n) == "grüß".encode()
    assert mm.write_str("")[1] == 0
    with pytest.raises(MemoryAccessError):
        mm.read_str(PAGE * 5, 1)


def test_prefixed_bytes(mm: MemoryManager) -> None:
    p = mm.write_bytes_prefixed(b"\x00\x01\xff")
    assert mm.read_u32(p) == 3
    assert mm.read_bytes_prefixed(p) == b"\x00\x01\xff"
    assert mm.read_bytes_prefixed(mm.write_bytes_prefixed(bytearray())) == b""


def test_unencodable_and_wrong_strings(mm: MemoryManager) -> None:
    with pytest.raises(LayoutError, match="UTF-8"):
        mm.write_string("\ud800")
    with pytest.raises(LayoutError, match="expected a str"):
        mm.write_string(b"bytes")  # type: ignore[arg-type]


# -- genes --------------------------------------------------------------------------------

POINT = GeneLayout.from_fields("Point", [("x", "i64"), ("y", "i64")])
MIXED = GeneLayout.from_fields("Mixed", [("count", "i32"), ("active", "bool"), ("value", "f64")])


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"
    BLUE = "b"


LABEL = GeneLayout.from_fields(
    "Label",
    [("text", "string"), ("color", Color), ("state", ["Todo", "Done"]), ("initial", "char")],
)
RECT = GeneLayout.from_fields("Rect", [("origin", POINT), ("w", "f32"), ("label", LABEL)])
POINT3 = GeneLayout.from_fields("Point3", [("z", "i64")], extends=POINT)


@attrs.frozen
class PointA:
    x: int
    y: int


@dataclasses.dataclass
class PointD:
    x: int
    y: int


def test_point_from_dict_attrs_and_dataclass(guest: Guest) -> None:
    mm = guest.mm
    p = mm.alloc(POINT.size, POINT.alignment)
    for value in ({"x": 10, "y": 20}, PointA(10, 20), PointD(10, 20)):
        mm.write_bytes(p, b"\0" * 16)
        mm.write_gene(p, value, POINT)
        assert mm.read_gene(p, POINT) == {"x": 10, "y": 20}
        assert guest.point_sum(p) == 30  # the guest reads the same layout


def test_mixed_gene(mm: MemoryManager) -> None:
    p = mm.new_gene({"count": -3, "active": True, "value": 2.5}, MIXED)
    assert p % 8 == 0
    assert mm.read_gene(p, MIXED) == {"count": -3, "active": True, "value": 2.5}
    assert mm.read_i32(p + 4) == 1
    mm.write_i32(p + 4, 7)  # any non-zero i32 reads as True
    assert mm.read_gene(p, MIXED)["active"] is True


def test_nested_gene_with_strings_and_enums(mm: MemoryManager) -> None:
    value = {
        "origin": {"x": -1, "y": 2**40},
        "w": 0.5,
        "label": {"text": "zürich", "color": Color.BLUE, "state": "Done", "initial": "z"},
    }
    p = mm.new_gene(value, RECT)
    assert mm.read_gene(p, RECT) == value
    label_at = p + RECT.field("label").offset
    text_ptr = mm.read_u32(label_at)
    assert mm.read_string(text_ptr) == "zürich"
    assert mm.read_i32(label_at + 4) == 2  # BLUE is variant 2, whatever its value
    assert mm.read_i32(label_at + 8) == 1
    assert mm.read_u32(label_at + 12) == ord("z")
    # enums also accept a name or an index, chars a code point
    mm.write_gene(label_at, {"text": "", "color": "RED", "state": 0, "initial": 65}, LABEL)
    assert mm.read_gene(label_at, LABEL) == {
        "text": "",
        "color": Color.RED,
        "state": "Todo",
        "initial": "A",
    }


def test_extended_gene(guest: Guest) -> None:
    mm = guest.mm
    p = mm.new_gene({"x": 1, "y": 2, "z": 3}, POINT3)
    assert mm.read_gene(p, POINT3) == {"x": 1, "y": 2, "z": 3}
    assert mm.read_gene(p, POINT) == {"x": 1, "y": 2}  # a child is usable as its parent
    assert guest.point_sum(p) == 3


def test_all_scalar_kinds_in_a_gene(mm: MemoryManager) -> None:
    g = GeneLayout.from_fields(
        "All",
        [
            ("a", "i32"),
            ("b", "u32"),
            ("c", "i64"),
            ("d", "u64"),
            ("e", "f32"),
            ("f", "f64"),
            ("g", "bool"),
            ("h", "char"),
            ("i", "string"),
            ("j", "ptr"),
        ],
    )
    value = {
        "a": -(2**31),
        "b": 2**32 - 1,
        "c": -(2**63),
        "d": 2**64 - 1,
        "e": 0.25,
        "f": -1e300,
        "g": False,
        "h": "✓",
        "i": "text",
        "j": 0xFFFFFFFF,
    }
    assert mm.read_gene(mm.new_gene(value, g), g) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": 1}, r"gene 'Point': missing field\(s\) 'y'"),
        ({"x": 1, "y": 2, "z": 3}, r"gene 'Point': unknown field\(s\) 'z'"),
        ({"x": 1, "z": 3}, r"missing field\(s\) 'y'; unknown field\(s\) 'z'"),
        ({"x": 1.5, "y": 2}, r"gene 'Point' field 'x' \(i64\): expected an int, got float"),
        ({"x": "1", "y": 2}, r"field 'x' \(i64\): expected an int, got str"),
        ({"x": 1, "y": 2**63}, r"field 'y' \(i64\): value 9223372036854775808 out of range"),
        (PointD(1, 2**64), r"field 'y' \(i64\): .* out of range"),
        (7, r"gene 'Point': expected a dict, an attrs instance or a dataclass"),
    ],
)
def test_bad_gene_values(mm: MemoryManager, value: Any, message: str) -> None:
    p = mm.alloc(16)
    mm.write_bytes(p, b"\x11" * 16)
    with pytest.raises(LayoutError, match=message):
        mm.write_gene(p, value, POINT)
    assert mm.read_bytes(p, 16) == b"\x11" * 16
    before = mm.allocated
    with pytest.raises(LayoutError):
        mm.new_gene(value, POINT)
    assert mm.allocated == before  # nothing allocated for a bad value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"count": 1, "active": 2, "value": 0.0}, r"'active' \(bool\): expected a bool"),
        ({"count": 1, "active": True, "value": "x"}, r"'value' \(f64\): expected a float"),
        ({"count": 2**31, "active": True, "value": 0.0}, r"'count' \(i32\): value .* out of range"),
    ],
)
def test_bad_mixed_values(mm: MemoryManager, value: Any, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        mm.new_gene(value, MIXED)


@pytest.mark.parametrize(
    ("path_", "bad", "message"),
    [
        (("origin", "x"), 0.5, r"gene 'Rect' field 'origin.x' \(i64\)"),
        (("origin",), 3, r"gene 'Rect' field 'origin' \(Point\): expected a dict"),
        (("label", "text"), 5, r"'label.text' \(string\): expected str"),
        (("label", "color"), "PINK", r"'label.color' \(Color\[RED, GREEN, BLUE\]\): 'PINK'"),
        (("label", "state"), 2, r"'label.state' .*out of range"),
        (("label", "initial"), "ab", r"'label.initial' \(char\)"),
    ],
)
def test_bad_nested_values_name_the_path(
    mm: MemoryManager, path_: tuple[str, ...], bad: Any, message: str
) -> None:
    value: dict[str, Any] = {
        "origin": {"x": 1, "y": 2},
        "w": 1.0,
        "label": {"text": "t", "color": Color.RED, "state": "Todo", "initial": "i"},
    }
    target = value
    for key in path_[:-1]:
        target = target[key]
    target[path_[-1]] = bad
    before = mm.allocated
    with pytest.raises(LayoutError, match=message):
        mm.new_gene(value, RECT)
    assert mm.allocated == before


def test_gene_bounds(mm: MemoryManager) -> None:
    with pytest.raises(MemoryAccessError):
        mm.read_gene(PAGE - 8, POINT)
    with pytest.raises(MemoryAccessError):
        mm.write_gene(PAGE - 8, {"x": 1, "y": 2}, POINT)
    before = mm.allocated
    with pytest.raises(MemoryAccessError):
        mm.write_gene(
            -4,
            {
                "origin": {"x": 1, "y": 2},
                "w": 1.0,
                "label": {"text": "never written", "color": "RED", "state": 0, "initial": "x"},
            },
            RECT,
        )
    assert mm.allocated == before  # no string was allocated for a gene that cannot be written


def test_corrupt_gene_memory(mm: MemoryManager) -> None:
    p = mm.alloc(LABEL.size, LABEL.alignment)
    mm.write_gene(p, {"text": "ok", "color": "RED", "state": 0, "initial": "x"}, LABEL)
    mm.write_i32(p + 4, 9)
    with pytest.raises(LayoutError, match=r"gene 'Label' field 'color'.*invalid discriminant 9"):
        mm.read_gene(p, LABEL)
    mm.write_i32(p + 4, 0)
    mm.write_u32(p + 12, 0x110000)
    with pytest.raises(LayoutError, match="not a Unicode code point"):
        mm.read_gene(p, LABEL)
    mm.write_u32(p + 12, 65)
    mm.write_u32(p, PAGE * 10)
    with pytest.raises(MemoryAccessError):
        mm.read_gene(p, LABEL)


# -- property tests ---------------------------------------------------------------------------

_KIND_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "i32": st.integers(-(2**31), 2**31 - 1),
    "u32": st.integers(0, 2**32 - 1),
    "i64": st.integers(-(2**63), 2**63 - 1),
    "u64": st.integers(0, 2**64 - 1),
    "f32": st.floats(width=32, allow_nan=False),
    "f64": st.floats(allow_nan=False),
    "bool": st.booleans(),
    "char": st.characters(exclude_categories=["Cs"]),
    "string": st.text(max_size=40),
    "ptr": st.integers(0, 2**32 - 1),
    "Color": st.sampled_from(list(Color)),
    "names": st.sampled_from(["A", "B", "C"]),
}


def _spec(kind: str) -> Any:
    return {"Color": Color, "names": ["A", "B", "C"]}.get(kind, kind)


@st.composite
def gene_and_value(draw: st.DrawFn, depth: int = 2) -> tuple[GeneLayout, dict[str, Any]]:
    fields: list[tuple[str, Any]] = []
    value: dict[str, Any] = {}
    for i in range(draw(st.integers(0, 5))):
        if depth and draw(st.integers(0, 3)) == 0:
            inner, inner_value = draw(gene_and_value(depth=depth - 1))
            fields.append((f"g{i}", inner))
            value[f"g{i}"] = inner_value
        else:
            kind = draw(st.sampled_from(sorted(_KIND_VALUES)))
            fields.append((f"f{i}", _spec(kind)))
            value[f"f{i}"] = draw(_KIND_VALUES[kind])
    return GeneLayout.from_fields(f"G{depth}", fields), value


@settings(max_examples=200, deadline=None)
@given(gene_and_value())
def test_any_gene_round_trips(case: tuple[GeneLayout, dict[str, Any]]) -> None:
    layout, value = case
    mm = Guest().mm
    p = mm.new_gene(value, layout)
    assert p % layout.alignment == 0
    assert mm.read_gene(p, layout) == value
    q = mm.alloc(layout.size, layout.alignment)
    mm.write_gene(q, value, layout)
    assert mm.read_gene(q, layout) == value


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_round_trips(text: str) -> None:
    mm = Guest().mm
    p = mm.write_string(text)
    assert p % 4 == 0
    assert mm.read_string(p) == text
    ptr, n = mm.write_str(text)
    assert mm.read_str(ptr, n) == text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, PAGE - 300))
def test_any_bytes_round_trip(data: bytes, ptr: int) -> None:
    mm = Guest().mm
    mm.write_bytes(ptr, data)
    assert mm.read_bytes(ptr, len(data)) == data
    assert mm.read_bytes_prefixed(mm.write_bytes_prefixed(data)) == data


_bad_ranges = st.one_of(
    st.tuples(st.integers(-(2**70), -1), st.integers(0, 2**70)),  # negative pointer
    st.tuples(st.integers(0, 2**70), st.integers(-(2**70), -1)),  # negative length
    st.tuples(st.integers(PAGE + 1, 2**70), st.integers(0, 2**70)),  # starts past the end
    st.integers(0, PAGE).flatmap(  # starts inside, ends past the end
        lambda p: st.tuples(st.just(p), st.integers(PAGE - p + 1, 2**70))
    ),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_bad_ranges)
def test_out_of_range_never_crashes(mm: MemoryManager, bad: tuple[int, int]) -> None:
    ptr, n = bad
    size = mm.size
    assert size == PAGE
    with pytest.raises(MemoryAccessError):
        mm.read_bytes(ptr, n)
    with pytest.raises(MemoryAccessError):
        mm.view(ptr, n)
    with pytest.raises(MemoryAccessError):
        mm.read_str(ptr, n)
    if 0 <= n <= 2 * PAGE:
        with pytest.raises(MemoryAccessError):
            mm.write_bytes(ptr, b"x" * n)
    for reader, need in (("read_u8", 1), ("read_i32", 4), ("read_f64", 8), ("read_string", 4)):
        if ptr < 0 or ptr > size - need:
            with pytest.raises(MemoryAccessError):
                getattr(mm, reader)(ptr)
    if ptr < 0 or ptr > size - POINT.size:
        with pytest.raises(MemoryAccessError):
            mm.read_gene(ptr, POINT)
        with pytest.raises(MemoryAccessError):
            mm.write_gene(ptr, {"x": 1, "y": 2}, POINT)


# -- page counts that would wrap ------------------------------------------------------------


@pytest.mark.parametrize("pages", [2**16 + 1, 2**32, 2**32 + 1, 2**63, 2**64, 2**64 + 1])
def test_absurd_page_counts_are_refused(mm: MemoryManager, pages: int) -> None:
    """The engine takes a u64: 2**64 would wrap to 0 pages and 2**64 + 1 to one."""
    with pytest.raises(MemoryAccessError, match=f"cannot grow memory by {pages} pages"):
        mm.grow(pages)
    assert mm.pages == 1
    with pytest.raises(TypeError):
        mm.grow(1.5)  # type: ignore[arg-type]


def test_absurd_page_counts_for_a_64_bit_memory(path: str) -> None:
    g = Guest('(module (memory (export "memory") i64 1))')
    for pages in (2**48 + 1, 2**64, 2**64 + 1):
        with pytest.raises(MemoryAccessError, match="at most 281474976710656 pages"):
            g.mm.grow(pages)
    with pytest.raises(MemoryAccessError, match="cannot grow memory by"):
        g.mm.grow(2**48)  # addressable, but more than the machine has: the engine says no
    assert g.mm.grow(1) == 1 and g.mm.pages == 2


# -- a guest that grows its own memory --------------------------------------------------------

#: A guest with no allocator that takes memory by growing it, writing a marker at the
#: start of the page it got (the old end of memory), as a wasm `malloc`-less program does.
GROWER_WAT = r"""
(module
  (memory (export "memory") 1 8)
  (func (export "take_page") (result i32)
    (local $old i32)
    (local.set $old (memory.grow (i32.const 1)))
    (i32.store (i32.shl (local.get $old) (i32.const 16)) (i32.const 0x600D600D))
    (local.get $old))
  (func (export "marker") (param $page i32) (result i32)
    (i32.load (i32.shl (local.get $page) (i32.const 16))))
  (func (export "str_len") (param $s i32) (result i32) (i32.load (local.get $s)))
)
"""
MARKER = 0x600D600D


def _grower() -> Spirit:
    return Spirit.load_sync(bytes(wasmtime.wat2wasm(GROWER_WAT)), name="grower")


def test_host_never_allocates_over_pages_the_guest_grew() -> None:
    with _grower() as spirit:
        page = spirit.call_sync("take_page")
        assert page == 1
        memory = spirit.memory
        assert memory is not None
        for attempt in (
            lambda: spirit.call_sync("str_len", "hello"),  # a str argument
            lambda: memory.write_string("hello"),
            lambda: memory.write_str("hello"),
            lambda: memory.alloc(8),
        ):
            with pytest.raises(MemoryAccessError) as info:
                attempt()
            message = str(info.value)
            assert "the guest grew its memory itself" in message
            assert "Export an allocator" in message and "memory.write_bytes" in message
        assert spirit.call_sync("marker", page) == MARKER  # never overwritten
        assert memory.allocated == 0
        # a buffer the guest provides is still the way in
        memory.write_bytes(page * PAGE + 4, b"\x05\x00\x00\x00hello")
        assert spirit.call_sync("str_len", page * PAGE + 4) == 5


def test_host_keeps_the_pages_it_grew_itself_when_the_guest_grows_after() -> None:
    with _grower() as spirit:
        assert spirit.call_sync("str_len", "x" * 100) == 100  # the host grows to 2 pages
        memory = spirit.memory
        assert memory is not None and memory.pages == 2
        page = spirit.call_sync("take_page")
        assert page == 2
        # small strings still fit in the page the host grew: the guest's page is above it
        assert spirit.call_sync("str_len", "y" * 200) == 200
        with pytest.raises(MemoryAccessError, match="the guest grew its memory itself"):
            spirit.call_sync("str_len", "z" * PAGE)  # would need the guest's page
        assert spirit.call_sync("marker", page) == MARKER


def test_host_growth_after_guest_growth_is_not_taken_as_the_host_regions(path: str) -> None:
    g = Guest()
    mm = g.mm
    assert mm.grow(1) == 1  # the host's page: [PAGE, 2 * PAGE)
    assert g.grow(1) == 2  # the guest's: [2 * PAGE, 3 * PAGE)
    g.store_i64(2 * PAGE, 4242)
    assert mm.grow(1) == 3  # the host's again, but not next to its region
    assert mm.read_i64(mm.alloc(PAGE - 8)) == 0  # inside the host's own first page
    with pytest.raises(MemoryAccessError, match="the guest grew its memory itself"):
        mm.alloc(16)
    assert g.load_i64(2 * PAGE) == 4242


def test_guest_growth_below_the_host_region_is_harmless(path: str) -> None:
    g = Guest(host_base=3 * PAGE)
    assert g.grow(1) == 1  # [PAGE, 2 * PAGE): below the host region
    g.store_i64(PAGE, 7)
    ptr = g.mm.alloc(64)
    assert ptr == 3 * PAGE and g.mm.pages == 4
    g.mm.write_bytes(ptr, b"\xff" * 64)
    assert g.load_i64(PAGE) == 7


def test_a_guest_allocator_serves_a_guest_that_grows_its_memory() -> None:
    wat = GROWER_WAT.replace(
        '(func (export "str_len")',
        """(global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $size i32) (param $align i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (local.get $ptr))
  (func (export "str_len")""",
    )
    with Spirit.load_sync(bytes(wasmtime.wat2wasm(wat)), name="grower") as spirit:
        page = spirit.call_sync("take_page")
        assert spirit.call_sync("str_len", "hello") == 5
        memory = spirit.memory
        assert memory is not None
        assert 1024 <= memory.write_string("from the guest's heap") < PAGE
        assert spirit.call_sync("marker", page) == MARKER


def test_dol_spirit_host_strings_stay_above_the_guest_heap() -> None:
    with Spirit.load_sync(SPIRITS / "strings.wasm") as spirit:
        memory = spirit.memory
        assert memory is not None and memory.host_base >= HEAP_END
        for i in range(40):
            text = f"word {i} " * 20
            ptr = memory.write_string(text)
            assert ptr >= HEAP_END
            upper = spirit.call_sync("upper", ptr)  # allocates on the guest heap
            assert upper < HEAP_END
            assert memory.read_string(upper) == text.upper()
            assert memory.read_string(ptr) == text


# -- after the Spirit is closed ---------------------------------------------------------------

#: Run in a child: before the fix, touching a view of a closed and collected Spirit's
#: memory read the freed mapping and crashed the process (SIGSEGV).
_CLOSED_VIEW = r"""
import gc, sys, weakref
import wasmtime
from vudo_runtime import MemoryClosedError
from vudo_runtime import GeneLayout
from vudo_runtime import Spirit

POINT = GeneLayout.from_fields("Point", [("x", "i64"), ("y", "i64")])
wasm = bytes(wasmtime.wat2wasm(sys.argv[1]))
for round in range(20):
    # only views survive the Spirit: they must keep its memory mapped
    spirit = Spirit.load_sync(wasm, name="gone")
    ptr = spirit.memory.write_string("still here")
    view = spirit.memory.view(0, spirit.memory.size)
    small = spirit.memory.view(ptr, 8)
    store = weakref.ref(spirit._store)
    spirit.close()
    del spirit
    gc.collect()
    others = [Spirit.load_sync(wasm) for _ in range(4)]  # would reuse the freed memory
    view[0] = 0x41
    small[4:8] = b"gone"
    assert bytes(view[ptr + 4 : ptr + 8]) == b"gone" and view[0] == 0x41
    assert store() is not None, "the views must keep the Store"
    del view, small, others
    gc.collect()
    assert store() is None, "the Store outlived its last view"

    # a MemoryManager kept past its Spirit: every access is a clear error
    spirit = Spirit.load_sync(wasm, name="gone")
    mm = spirit.memory
    ptr = mm.write_string("still here")
    store = weakref.ref(spirit._store)
    spirit.close()
    del spirit
    gc.collect()
    # The instance manager may keep the Store for reuse; the MemoryManager must not.
    kept = store()
    assert kept is None or all(v is not kept for v in vars(mm).values()), "mm keeps the Store"
    del kept
    calls = {
        "view": lambda: mm.view(0, 8),
        "read_u8": lambda: mm.read_u8(0),
        "read_i64": lambda: mm.read_i64(8),
        "read_f64": lambda: mm.read_f64(8),
        "write_u8": lambda: mm.write_u8(0, 1),
        "write_i64": lambda: mm.write_i64(8, 1),
        "read_bytes": lambda: mm.read_bytes(0, 4),
        "write_bytes": lambda: mm.write_bytes(0, b"x"),
        "read_string": lambda: mm.read_string(ptr),
        "read_str": lambda: mm.read_str(0, 1),
        "write_string": lambda: mm.write_string("x"),
        "alloc": lambda: mm.alloc(8),
        "free": lambda: mm.free(ptr),
        "reset": mm.reset,
        "grow": lambda: mm.grow(1),
        "size": lambda: mm.size,
        "read_gene": lambda: mm.read_gene(0, POINT),
        "write_gene": lambda: mm.write_gene(0, {"x": 1, "y": 2}, POINT),
        "new_gene": lambda: mm.new_gene({"x": 1, "y": 2}, POINT),
    }
    for name, call in calls.items():
        try:
            call()
        except MemoryClosedError as e:
            assert "'gone' is closed" in str(e), (name, str(e))
        else:
            raise AssertionError(f"{name} worked on a closed Spirit's memory")
    assert repr(mm).endswith("closed>") and mm.closed
print("ok")
"""


@pytest.mark.parametrize("wat", [mem_module(1, 4), ALLOC_WAT], ids=["host-region", "guest-alloc"])
def test_memory_of_a_closed_spirit_never_crashes(wat: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CLOSED_VIEW, wat],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr}"
    assert done.stdout == "ok\n"
    assert "Fatal Python error" not in done.stderr and "Traceback" not in done.stderr


def test_closing_the_spirit_closes_its_memory() -> None:
    spirit = Spirit.load_sync(bytes(wasmtime.wat2wasm(ALLOC_WAT)), name="shut")
    memory = spirit.memory
    assert memory is not None and not memory.closed
    ptr = memory.write_string("hi")
    spirit.close()
    assert memory.closed and spirit.memory is None
    with pytest.raises(MemoryClosedError, match="Spirit 'shut' is closed") as info:
        memory.read_string(ptr)
    assert isinstance(info.value, MemoryAccessError) and isinstance(info.value, VudoError)
    with pytest.raises(MemoryClosedError):
        memory.alloc(8)
    memory.close()  # idempotent
