"""MemoryManager: bounds-checked, fast access to one Spirit's linear memory.

Every access reads the memory's base address afresh (a grown memory may move) and
checks the whole range ``[ptr, ptr + n)`` against the memory's length, raising
:class:`MemoryAccessError` otherwise: never a crash, never a silent wrap. Values
are little-endian, as in WebAssembly.

How it stays fast: the bytes are reached through one ``memoryview`` over the
whole memory, rebuilt whenever the base address read for the access differs from
the one the view was built on, or the access reaches past the view's end (then
the current length is read and checked first). Linear memory never shrinks, so a
length once seen stays valid; the base address is never trusted without being
re-read. ``struct.unpack_from``/``pack_into`` and slice copies then work in place.

Host allocations (strings and genes the host hands to the guest) come from the
guest's exported allocator when the runtime supplies one, and otherwise from the
host region at ``host_base``, managed by :class:`~vudo_runtime.heap.HostHeap`
(which see: it grows the memory by whole pages and never takes pages the guest grew).

After :meth:`MemoryManager.close` (called by ``Spirit.close()``) every access raises
:class:`MemoryClosedError`; views taken before keep the Store, and so the mapped
memory, alive, so they never touch freed memory.

A MemoryManager is not thread-safe; like its Store, use it from one thread at a time.
"""

from __future__ import annotations

import ctypes
import operator
import struct
from collections.abc import Callable
from typing import Any, NoReturn, cast

import wasmtime

from vudo_runtime.errors import LayoutError, MemoryAccessError, MemoryClosedError
from vudo_runtime.heap import HostHeap
from vudo_runtime.layout import GeneLayout

__all__ = ["HEAP_END", "MemoryManager"]

HEAP_END = 65536
"""End of a DOL Spirit's guest heap (global 1); its allocator never hands out memory past it."""

_I8 = struct.Struct("<b")
_U8 = struct.Struct("<B")
_I16 = struct.Struct("<h")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")

_EMPTY = memoryview(bytearray())


def _load_raw_bindings() -> tuple[Any, Any]:
    """wasmtime's C functions for a memory's base address and length.

    The public ``Memory.data_ptr``/``data_len`` cost ~0.65 µs each; the C function
    with a ``void*`` result costs ~0.2 µs. ``dll[name]`` returns a fresh function
    object, so setting its ``restype`` never touches wasmtime's own. Returns
    ``(None, None)`` when the private bindings are missing; the public API is used then.
    """
    try:
        from wasmtime import _ffi

        data = _ffi.dll["wasmtime_memory_data"]
        data.restype = ctypes.c_void_p
        size = _ffi.dll["wasmtime_memory_data_size"]
        size.restype = ctypes.c_size_t
    except Exception:  # pragma: no cover - depends on the installed wasmtime
        return None, None
    return data, size


_raw_data, _raw_size = _load_raw_bindings()


class _ClosedStore:
    """Takes the Store's place after close(): every memory access asks it for the store
    context and gets a clear error, so the hot paths need no check of their own."""

    def __init__(self, message: str) -> None:
        self._message = message

    def _context(self) -> NoReturn:
        raise MemoryClosedError(self._message)


class MemoryManager:
    """Typed, bounds-checked reads and writes, allocation, strings and genes in one memory.

    ``store`` (a ``wasmtime.Store`` or ``Caller``) lives in ``self._store`` and is only
    ever used through that attribute, so the runtime may swap in the Caller of a
    host call and restore the Store afterwards. ``guest_alloc(size, align) -> ptr``
    and ``guest_free(ptr, size, align)`` are the guest's exported allocator, if any.
    """

    def __init__(
        self,
        store: wasmtime.Store | wasmtime.Caller,
        memory: wasmtime.Memory,
        *,
        guest_alloc: Callable[[int, int], int] | None = None,
        guest_free: Callable[[int, int, int], None] | None = None,
        host_base: int | None = None,
        spirit: str = "",
    ) -> None:
        if guest_free is not None and guest_alloc is None:
            raise ValueError(
                "guest_free needs guest_alloc: the host cannot free what the guest did not allocate"
            )
        self._store: wasmtime.Store | wasmtime.Caller = store
        self._owner: object = store  # what views keep alive (never a swapped-in Caller)
        self._closed = False
        self._memory = memory
        self._spirit = spirit
        self._where = f"Spirit {spirit!r}" if spirit else "linear memory"
        self._guest_alloc = guest_alloc
        self._guest_free = guest_free
        mtype = memory.type(store)
        self._page_size: int = memory.page_size(store)
        self._max_pages: int | None = mtype.limits.max
        self._addr_limit = 2**64 if mtype.is_64 else 2**32
        self._heap = HostHeap(
            host_base,
            min_size=mtype.limits.min * self._page_size,
            current_size=memory.data_len(store),
            page_size=self._page_size,
            max_pages=self._max_pages,
            addr_limit=self._addr_limit,
            where=self._where,
        )
        self._guest_live: dict[int, tuple[int, int]] = {}  # ptr -> (size, align)
        #: A view was handed out: it outlives close(), so the instance must not be reused.
        self.exposed = False

        self._mref: Any = None  # byref(memory._memory) when the raw bindings are used
        if _raw_data is not None and self._raw_agrees(memory):
            self._mref = ctypes.byref(memory._memory)
        self._view_base: int | None = -1  # base address the view was built on
        self._view_len = 0
        self._view_mv = _EMPTY
        self._known_size = self._current_size()  # a length the memory is known to have

    # -- base address, length and the whole-memory view ----------------------

    def _raw_agrees(self, memory: wasmtime.Memory) -> bool:
        """Whether the raw bindings report what the public API does (else use the public API)."""
        try:
            ref = ctypes.byref(memory._memory)
            ctx = self._store._context()
            base, size = _raw_data(ctx, ref), _raw_size(ctx, ref)
            public_size = memory.data_len(self._store)
            public_base = ctypes.cast(memory.data_ptr(self._store), ctypes.c_void_p).value
        except Exception:
            return False
        return bool(size == public_size and base == public_base)

    def _base(self) -> int | None:
        if self._mref is not None:
            base: int | None = _raw_data(self._store._context(), self._mref)
            return base
        return ctypes.cast(self._memory.data_ptr(self._store), ctypes.c_void_p).value

    def _current_size(self) -> int:
        if self._mref is not None:
            return int(_raw_size(self._store._context(), self._mref))
        return int(self._memory.data_len(self._store))

    def _mv(self, ptr: int, n: int, what: str = "") -> memoryview:
        """The whole memory as a writable byte view, once ``[ptr, ptr + n)`` is known to fit."""
        if self._mref is not None:
            base = _raw_data(self._store._context(), self._mref)
        else:
            base = self._base()
        if base != self._view_base or ptr < 0 or n < 0 or ptr + n > self._view_len:
            return self._remap(ptr, n, what)
        return self._view_mv

    def _remap(self, ptr: int, n: int, what: str = "") -> memoryview:
        """Re-read base and length, check the access, and rebuild the view if it went stale."""
        if self._closed:
            raise self._closed_error()
        size = self._current_size()
        base = self._base()
        self._known_size = size
        if ptr < 0 or n < 0 or ptr + n > size:
            raise self._out_of_bounds(ptr, n, size, what)
        if base != self._view_base or size != self._view_len:
            if size == 0 or not base:
                self._view_mv = _EMPTY
            else:
                pages = (ctypes.c_ubyte * size).from_address(base)
                # Views outlive the manager (and its Spirit): each keeps the Store, and so
                # this mapping, alive, instead of reading freed memory.
                pages._vudo_owner = self._owner  # type: ignore[attr-defined]
                self._view_mv = memoryview(pages).cast("B")
            self._view_base = base
            self._view_len = size
        return self._view_mv

    def _out_of_bounds(self, ptr: int, n: int, size: int, what: str = "") -> MemoryAccessError:
        hint = ""
        if isinstance(ptr, int) and -(2**31) <= ptr < 0:
            hint = (
                "; a negative pointer is usually an unsigned i32 read as signed:"
                f" ptr & 0xFFFFFFFF = {ptr & 0xFFFFFFFF:#x}"
            )
        shown = f"{ptr:#x} ({ptr})" if isinstance(ptr, int) else repr(ptr)
        return MemoryAccessError(
            f"{self._where}: out-of-bounds memory access{what}: ptr={shown} length={n}"
            f" but the memory is {size} bytes ({size // self._page_size} pages){hint}"
        )

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Detach from the Spirit (its ``close()`` calls this): later accesses raise
        MemoryClosedError; views taken before stay safe to touch but see no later writes."""
        if self._closed:
            return
        self._closed = True
        # The sentinel makes every read and write fail in the store lookup it already does,
        # and the manager no longer holds the Store: a dropped Spirit is freed.
        self._store = cast("wasmtime.Store", _ClosedStore(self._closed_message()))
        self._owner = None
        self._view_mv, self._view_base, self._view_len = _EMPTY, -1, 0
        self._guest_alloc = self._guest_free = None
        self._heap.reset()
        self._guest_live.clear()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the Spirit was closed)."""
        return self._closed

    def _closed_message(self) -> str:
        return (
            f"{self._where} is closed: its memory can no longer be read, written or"
            " allocated from; load the Spirit again"
        )

    def _closed_error(self) -> MemoryClosedError:
        return MemoryClosedError(self._closed_message())

    # -- size and growth ------------------------------------------------------

    @property
    def size(self) -> int:
        """Current size in bytes."""
        size = self._current_size()
        self._known_size = size
        return size

    @property
    def pages(self) -> int:
        """Current size in pages."""
        return self.size // self._page_size

    @property
    def page_size(self) -> int:
        """Bytes per page (65536 unless the module uses custom page sizes)."""
        return self._page_size

    @property
    def max_pages(self) -> int | None:
        """The memory's declared maximum in pages (None: only the address space limits it)."""
        return self._max_pages

    @property
    def host_base(self) -> int:
        """Where the host allocation region starts."""
        return self._heap.base

    @property
    def spirit(self) -> str:
        """The Spirit name used in error messages."""
        return self._spirit

    def grow(self, pages: int) -> int:
        """Grow by ``pages`` pages and return the old size in pages; MemoryAccessError if it cannot.

        Growing may move the memory: views from :meth:`view` taken before are then invalid.
        """
        if self._closed:
            raise self._closed_error()
        pages = operator.index(pages)
        if pages < 0:
            raise MemoryAccessError(
                f"{self._where}: cannot grow memory by a negative number of pages ({pages})"
            )
        most = self._addr_limit // self._page_size
        if pages > most:  # checked here: the engine takes a u64 and would wrap 2**64 to 0
            raise MemoryAccessError(
                f"{self._where}: cannot grow memory by {pages} pages: a memory can have at"
                f" most {most} pages of {self._page_size} bytes"
            )
        try:
            old = int(self._memory.grow(self._store, pages))
        except wasmtime.WasmtimeError as e:
            current = self.pages
            limit = (
                f"its declared maximum is {self._max_pages} pages"
                if self._max_pages is not None
                else "it declares no maximum"
            )
            raise MemoryAccessError(
                f"{self._where}: cannot grow memory by {pages} page(s) from {current} pages:"
                f" {limit}, and the Store's memory limit may be lower ({e})"
            ) from e
        self._known_size = (old + pages) * self._page_size
        self._heap.grown(old * self._page_size, self._known_size)
        return old

    # -- typed scalars ----------------------------------------------------------

    def read_i8(self, ptr: int) -> int:
        """Signed 8-bit integer at ``ptr``."""
        return int(_I8.unpack_from(self._mv(ptr, 1), ptr)[0])

    def read_u8(self, ptr: int) -> int:
        """Unsigned 8-bit integer at ``ptr``."""
        return self._mv(ptr, 1)[ptr]

    def read_i16(self, ptr: int) -> int:
        """Signed 16-bit integer at ``ptr``."""
        return int(_I16.unpack_from(self._mv(ptr, 2), ptr)[0])

    def read_u16(self, ptr: int) -> int:
        """Unsigned 16-bit integer at ``ptr``."""
        return int(_U16.unpack_from(self._mv(ptr, 2), ptr)[0])

    def read_i32(self, ptr: int) -> int:
        """Signed 32-bit integer at ``ptr``."""
        return int(_I32.unpack_from(self._mv(ptr, 4), ptr)[0])

    def read_u32(self, ptr: int) -> int:
        """Unsigned 32-bit integer at ``ptr``."""
        return int(_U32.unpack_from(self._mv(ptr, 4), ptr)[0])

    def read_i64(self, ptr: int) -> int:
        """Signed 64-bit integer at ``ptr``."""
        return int(_I64.unpack_from(self._mv(ptr, 8), ptr)[0])

    def read_u64(self, ptr: int) -> int:
        """Unsigned 64-bit integer at ``ptr``."""
        return int(_U64.unpack_from(self._mv(ptr, 8), ptr)[0])

    def read_f32(self, ptr: int) -> float:
        """32-bit float at ``ptr``."""
        return float(_F32.unpack_from(self._mv(ptr, 4), ptr)[0])

    def read_f64(self, ptr: int) -> float:
        """64-bit float at ``ptr``."""
        return float(_F64.unpack_from(self._mv(ptr, 8), ptr)[0])

    def _write(self, ptr: int, value: Any, fmt: struct.Struct, kind: str) -> None:
        # pack first: a failing pack_into would already have zeroed the target bytes
        try:
            data = fmt.pack(value)
        except (struct.error, OverflowError, TypeError) as e:
            raise LayoutError(
                f"{self._where}: cannot write {value!r} ({type(value).__name__})"
                f" as {kind} at {ptr:#x}: {e}"
            ) from None
        n = fmt.size
        self._mv(ptr, n)[ptr : ptr + n] = data

    def write_i8(self, ptr: int, value: int) -> None:
        """Store a signed 8-bit integer; LayoutError when out of range."""
        self._write(ptr, value, _I8, "i8")

    def write_u8(self, ptr: int, value: int) -> None:
        """Store an unsigned 8-bit integer; LayoutError when out of range."""
        self._write(ptr, value, _U8, "u8")

    def write_i16(self, ptr: int, value: int) -> None:
        """Store a signed 16-bit integer; LayoutError when out of range."""
        self._write(ptr, value, _I16, "i16")

    def write_u16(self, ptr: int, value: int) -> None:
        """Store an unsigned 16-bit integer; LayoutError when out of range."""
        self._write(ptr, value, _U16, "u16")

    def write_i32(self, ptr: int, value: int) -> None:
        """Store a signed 32-bit integer; LayoutError when out of range."""
        self._write(ptr, value, _I32, "i32")

    def write_u32(self, ptr: int, value: int) -> None:
        """Store an unsigned 32-bit integer; LayoutError when out of range."""
        self._write(ptr, value, _U32, "u32")

    def write_i64(self, ptr: int, value: int) -> None:
        """Store a signed 64-bit integer; LayoutError when out of range."""
        self._write(ptr, value, _I64, "i64")

    def write_u64(self, ptr: int, value: int) -> None:
        """Store an unsigned 64-bit integer; LayoutError when out of range."""
        self._write(ptr, value, _U64, "u64")

    def write_f32(self, ptr: int, value: float) -> None:
        """Store a 32-bit float; LayoutError when too large for f32."""
        self._write(ptr, value, _F32, "f32")

    def write_f64(self, ptr: int, value: float) -> None:
        """Store a 64-bit float."""
        self._write(ptr, value, _F64, "f64")

    # -- bytes --------------------------------------------------------------------

    def read_bytes(self, ptr: int, n: int) -> bytes:
        """A copy of the ``n`` bytes at ``ptr``."""
        return self._mv(ptr, n)[ptr : ptr + n].tobytes()

    def write_bytes(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` (any bytes-like object) to ``ptr``."""
        if type(data) is not bytes and type(data) is not bytearray:
            src = memoryview(data)
            if src.format != "B" or src.ndim != 1:
                src = src.cast("B") if src.c_contiguous else memoryview(src.tobytes())
            data = src
        n = len(data)
        self._mv(ptr, n)[ptr : ptr + n] = data

    def view(self, ptr: int, n: int) -> memoryview:
        """A writable zero-copy view of ``[ptr, ptr + n)`` over the live memory.

        Invalidated by :meth:`grow` and by the guest growing its memory (a grown
        memory may move): take a fresh view after anything that can grow it.
        """
        view = self._mv(ptr, n)[ptr : ptr + n]
        self.exposed = True
        return view

    # -- allocation ---------------------------------------------------------------

    def alloc(self, size: int, align: int = 8) -> int:
        """Allocate ``size`` bytes aligned to ``align`` (a power of two) and return the pointer.

        Uses the guest's allocator when one was supplied, else the host region.
        MemoryAccessError when the memory cannot provide the space.
        """
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"alloc: size must be an int >= 0, got {size!r}")
        if not isinstance(align, int) or align < 1 or align & (align - 1):
            raise ValueError(f"alloc: align must be a power of two, got {align!r}")
        if self._closed:
            raise self._closed_error()
        if self._guest_alloc is not None:
            return self._alloc_guest(size, align)
        return self._heap.alloc(size, align, self)

    def _alloc_guest(self, size: int, align: int) -> int:
        assert self._guest_alloc is not None
        try:
            ptr = self._guest_alloc(size, align)
        except Exception as e:
            raise MemoryAccessError(
                f"{self._where}: the guest allocator failed for {size} bytes (align {align}): {e}"
            ) from e
        if not isinstance(ptr, int) or isinstance(ptr, bool):
            raise MemoryAccessError(
                f"{self._where}: the guest allocator returned {ptr!r}, not a pointer"
            )
        if ptr < 0 and self._addr_limit == 2**32:
            ptr &= 0xFFFFFFFF  # an i32 result arrives signed
        if ptr == 0:
            raise MemoryAccessError(
                f"{self._where}: the guest allocator returned 0 (out of memory)"
                f" for {size} bytes (align {align})"
            )
        current = self.size
        if ptr < 0 or ptr + size > current:
            raise MemoryAccessError(
                f"{self._where}: the guest allocator returned {ptr:#x} for {size} bytes,"
                f" outside the {current}-byte memory"
            )
        self._guest_live[ptr] = (size, align)
        return ptr

    def free(self, ptr: int) -> None:
        """Release an allocation made by :meth:`alloc` (or by a write_* that allocates)."""
        if self._closed:
            raise self._closed_error()
        if self._guest_alloc is not None:
            entry = self._guest_live.pop(ptr, None)
            if entry is None:
                raise self._unknown_pointer(ptr)
            if self._guest_free is not None:
                self._guest_free(ptr, entry[0], entry[1])
            return
        if not self._heap.free(ptr):
            raise self._unknown_pointer(ptr)

    def _unknown_pointer(self, ptr: int) -> MemoryAccessError:
        shown = f"{ptr:#x}" if isinstance(ptr, int) else repr(ptr)
        return MemoryAccessError(
            f"{self._where}: free({shown}): not a live allocation of this MemoryManager"
            " (freed twice, released by reset(), or allocated by someone else)"
        )

    def reset(self) -> None:
        """Free every host allocation at once (with a guest allocator: each via guest_free)."""
        if self._closed:
            raise self._closed_error()
        live = list(self._guest_live.items())
        self._guest_live.clear()
        self._heap.reset()
        if self._guest_free is not None:
            for ptr, (size, align) in live:
                self._guest_free(ptr, size, align)

    @property
    def allocated(self) -> int:
        """Bytes currently handed out by :meth:`alloc` (host blocks are rounded up to 8)."""
        return self._heap.allocated + sum(s for s, _ in self._guest_live.values())

    # -- strings and prefixed bytes ----------------------------------------------

    def write_string(self, s: str) -> int:
        """Write ``s`` as a DOL string (u32 length + UTF-8, aligned to 4); return its pointer."""
        return self._write_prefixed(self._encode(s))

    def write_bytes_prefixed(self, data: bytes | bytearray | memoryview) -> int:
        """Write ``data`` with a u32 length prefix (aligned to 4) and return its pointer."""
        return self._write_prefixed(bytes(data))

    def _write_prefixed(self, data: bytes) -> int:
        n = len(data)
        if n > 0xFFFFFFFF:
            raise LayoutError(f"{self._where}: {n} bytes do not fit a u32 length prefix")
        ptr = self.alloc((n + 7) & -4, 4)  # 4 + n, padded to 4
        mv = self._mv(ptr, n + 4)
        _U32.pack_into(mv, ptr, n)
        mv[ptr + 4 : ptr + 4 + n] = data
        return ptr

    def read_string(self, ptr: int, errors: str = "strict") -> str:
        """The DOL string at ``ptr`` (0 is a valid pointer).

        Invalid UTF-8 raises LayoutError unless ``errors`` (as for ``bytes.decode``,
        e.g. ``"replace"``) says otherwise.
        """
        mv = self._mv(ptr, 4, " reading a string's length prefix")
        n = _U32.unpack_from(mv, ptr)[0]
        start = ptr + 4
        if start + n > self._view_len:
            mv = self._remap(start, n, f" (the length prefix at {ptr:#x} says {n} bytes)")
        try:
            return str(mv[start : start + n], "utf-8", errors)
        except UnicodeDecodeError as e:
            raise self._bad_utf8(start, n, e) from e

    def read_bytes_prefixed(self, ptr: int) -> bytes:
        """The u32-length-prefixed bytes at ``ptr``."""
        mv = self._mv(ptr, 4, " reading a length prefix")
        n = _U32.unpack_from(mv, ptr)[0]
        start = ptr + 4
        if start + n > self._view_len:
            mv = self._remap(start, n, f" (the length prefix at {ptr:#x} says {n} bytes)")
        return mv[start : start + n].tobytes()

    def read_str(self, ptr: int, length: int, errors: str = "strict") -> str:
        """Raw UTF-8 at ``(ptr, length)``, as host functions receive strings."""
        mv = self._mv(ptr, length)
        try:
            return str(mv[ptr : ptr + length], "utf-8", errors)
        except UnicodeDecodeError as e:
            raise self._bad_utf8(ptr, length, e) from e

    def write_str(self, s: str) -> tuple[int, int]:
        """Write raw UTF-8 (no prefix) and return ``(ptr, length)``."""
        data = self._encode(s)
        n = len(data)
        ptr = self.alloc(n, 1)
        self._mv(ptr, n)[ptr : ptr + n] = data
        return ptr, n

    def _encode(self, s: str) -> bytes:
        if not isinstance(s, str):
            raise LayoutError(f"{self._where}: expected a str, got {type(s).__name__} {s!r}")
        try:
            return s.encode("utf-8")
        except UnicodeEncodeError as e:
            raise LayoutError(
                f"{self._where}: cannot encode string as UTF-8 ({e.reason} at index {e.start})"
            ) from e

    def _bad_utf8(self, ptr: int, n: int, e: UnicodeDecodeError) -> LayoutError:
        return LayoutError(
            f"{self._where}: invalid UTF-8 in guest string at {ptr:#x} ({n} bytes): {e.reason}"
            f" at byte {e.start}; pass errors='replace' to decode lossily"
        )

    # -- genes ----------------------------------------------------------------------

    def read_gene(self, ptr: int, layout: GeneLayout) -> dict[str, Any]:
        """Gene at ``ptr`` as a dict (nested as dicts, strings as str, enums as members)."""
        codec = layout.codec
        values = codec.struct.unpack_from(self._mv(ptr, codec.size), ptr)
        if codec.plain:
            return codec.decode_plain(values)
        return codec.decode(values, self.read_string)

    def write_gene(self, ptr: int, value: Any, layout: GeneLayout) -> None:
        """Store ``value`` (a dict, attrs or dataclass instance) at ``ptr`` as ``layout``.

        String fields are written with :meth:`write_string` and their pointers stored.
        LayoutError for missing or unknown fields and wrong or out-of-range values.
        """
        codec = layout.codec
        if codec.plain and type(value) is dict and len(value) == len(codec.names):
            # exactly the layout's keys: as many keys, and every name present
            try:
                data = codec.struct.pack(*codec.getter(value))
            except (KeyError, struct.error, OverflowError, TypeError):
                raise codec.diagnose(value) from None
            n = codec.size
            self._mv(ptr, n)[ptr : ptr + n] = data
            return
        if codec.plain and codec.matches_class(type(value)):
            # (pack, then copy: a failing pack_into would leave the gene half zeroed)
            try:
                data = codec.struct.pack(*codec.attr_getter(value))
            except (struct.error, OverflowError, TypeError):
                raise codec.diagnose(value) from None
            n = codec.size
            self._mv(ptr, n)[ptr : ptr + n] = data
            return
        flat, strings = codec.encode(value)
        self._mv(ptr, codec.size)  # fail before allocating any string
        self._store_encoded(ptr, layout, flat, strings)

    def new_gene(self, value: Any, layout: GeneLayout) -> int:
        """Allocate a gene (its size and alignment), write ``value`` and return the pointer."""
        flat, strings = layout.codec.encode(value)  # validate before allocating
        ptr = self.alloc(layout.size, layout.alignment)
        try:
            self._store_encoded(ptr, layout, flat, strings)
        except BaseException:
            self.free(ptr)
            raise
        return ptr

    def _store_encoded(
        self, ptr: int, layout: GeneLayout, flat: list[Any], strings: list[tuple[int, str]]
    ) -> None:
        written: list[int] = []
        try:
            for slot, text in strings:
                flat[slot] = self.write_string(text)
                written.append(flat[slot])
            codec = layout.codec
            # the view is taken after the strings: writing them may have grown the memory
            codec.struct.pack_into(self._mv(ptr, codec.size), ptr, *flat)
        except BaseException:
            for sptr in written:
                self.free(sptr)
            raise

    def __repr__(self) -> str:
        if self._closed:
            return f"<MemoryManager {self._where}: closed>"
        return (
            f"<MemoryManager {self._where}: {self._known_size} bytes,"
            f" host region from {self._heap.base:#x},"
            f" {self._heap.live_count + len(self._guest_live)} live allocation(s)>"
        )
