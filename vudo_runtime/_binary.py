"""A minimal reader of the wasm binary: screens what the engine's C API cannot describe.

wasmtime's C API aborts the whole process when it is asked for the parameter or result
types of a function that uses ``v128`` or a reference type other than a nullable
``funcref``/``externref`` (``anyref``, ``exnref``, ``i31ref``, ``(ref $t)``, ``(ref func)``
...: the GC, function-references and exception-handling proposals). Before the runtime
reads any import or export signature, this module finds such functions in the binary, so
they are refused with a clear error instead. It reads the whole type section (GC rec
groups, subtypes, structs and arrays too), so a module it cannot read is refused as well.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

_FUNC_FORM = 0x60

_NUMERIC = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
# Abstract heap types (GC, exceptions, stack switching), by their one-byte encoding.
_HEAP = {0x70: "func", 0x6F: "extern", 0x6E: "any", 0x6D: "eq", 0x6C: "i31", 0x6B: "struct",
         0x6A: "array", 0x69: "exn", 0x68: "cont", 0x71: "none", 0x72: "noextern",
         0x73: "nofunc", 0x74: "noexn", 0x75: "nocont"}  # fmt: skip
_NULLABLE_NAMES = {"none": "nullref", "noextern": "nullexternref", "nofunc": "nullfuncref",
                   "noexn": "nullexnref", "nocont": "nullcontref"}  # fmt: skip
_REF_NULL, _REF = 0x63, 0x64
_PACKED = {0x78: "i8", 0x77: "i16"}  # struct and array fields only
_REC, _SUB, _SUB_FINAL = 0x4E, 0x50, 0x4F
_STRUCT, _ARRAY, _CONT = 0x5F, 0x5E, 0x5D

#: The value types the C API can describe; any other in a signature aborts the process.
DESCRIBABLE = frozenset({"i32", "i64", "f32", "f64", "funcref", "externref"})


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("unexpected end of section")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self) -> int:
        return self._leb(signed=False)

    def sleb(self) -> int:
        return self._leb(signed=True)

    def _leb(self, *, signed: bool) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result - (1 << shift) if signed and b & 0x40 else result
            if shift > 70:
                raise ValueError("LEB128 too long")

    def name(self) -> str:
        n = self.uleb()
        if self.pos + n > self.end:
            raise ValueError("name runs past the end of its section")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", "replace")

    def heaptype(self) -> str:
        """An abstract heap type's name, or a concrete type index as a string."""
        b = self.byte()
        if b in _HEAP:
            return _HEAP[b]
        self.pos -= 1
        index = self.sleb()  # a type index, as a non-negative s33
        if index < 0:  # e.g. 0x65, a shared heap type: not something this reader knows
            raise ValueError(f"unknown heap type 0x{b:02x}")
        return str(index)

    def valtype(self) -> str:
        b = self.byte()
        if b in _NUMERIC:
            return _NUMERIC[b]
        if b in _HEAP:  # shorthand: (ref null <abstract>)
            heap, nullable = _HEAP[b], True
        elif b in (_REF_NULL, _REF):
            heap, nullable = self.heaptype(), b == _REF_NULL
        else:
            raise ValueError(f"unknown value type 0x{b:02x}")
        if not nullable:
            return f"(ref {heap})"
        if heap.isdigit():
            return f"(ref null {heap})"
        return _NULLABLE_NAMES.get(heap, f"{heap}ref")

    def limits(self) -> None:
        flags = self.byte()
        self.uleb()
        if flags & 0x01:
            self.uleb()
        if flags & 0x08:  # custom page size
            self.uleb()


_EXTERN_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}

FuncType = tuple[tuple[str, ...], tuple[str, ...]]


class Interface:
    """The imports and exports of a module, read from its binary."""

    def __init__(self) -> None:
        self.types: list[FuncType | None] = []  # None: a struct, array or continuation type
        self.func_types: list[int] = []  # type index of every function, imported first
        self.imports: list[tuple[str, str, str, FuncType | None]] = []
        self.exports: list[tuple[str, str, FuncType | None]] = []
        self.has_start = False  # a start function runs guest code while instantiating

    def unsupported(self) -> list[str]:
        """Imports and exports whose function type uses a value type the C API cannot
        describe, as ``"export 'f' (anyref)"``."""
        found = []
        for where, ty in [
            *((f"import {module}.{name}", ty) for module, name, _, ty in self.imports),
            *((f"export {name!r}", ty) for name, _, ty in self.exports),
        ]:
            if ty is None:
                continue
            bad = [t for t in ty[0] + ty[1] if t not in DESCRIBABLE]
            if bad:
                found.append(f"{where} ({', '.join(dict.fromkeys(bad))})")
        return found


def read_interface(wasm: bytes) -> Interface | None:
    """The module's interface, or None where the binary is malformed or uses an encoding
    this reader does not know (the engine then reports the error, or the module is refused).
    """
    try:
        return _parse(wasm)
    except (ValueError, IndexError, KeyError):
        return None


def _valtypes(r: _Reader) -> tuple[str, ...]:
    return tuple(r.valtype() for _ in range(r.uleb()))


def _field(r: _Reader) -> None:
    """A struct or array field: storage type and mutability."""
    if r.pos < r.end and r.data[r.pos] in _PACKED:
        r.pos += 1
    else:
        r.valtype()
    if r.byte() not in (0, 1):
        raise ValueError("bad field mutability")


def _subtype(r: _Reader) -> FuncType | None:
    """One type definition (``sub``/``sub final`` wrapper included): its type when a
    function type, else None."""
    form = r.byte()
    if form in (_SUB, _SUB_FINAL):
        for _ in range(r.uleb()):  # supertypes
            r.uleb()
        form = r.byte()
    if form == _FUNC_FORM:
        params = _valtypes(r)
        return params, _valtypes(r)
    if form == _STRUCT:
        for _ in range(r.uleb()):
            _field(r)
    elif form == _ARRAY:
        _field(r)
    elif form == _CONT:
        r.uleb()
    else:
        raise ValueError(f"unknown type form 0x{form:02x}")
    return None


def _sections(wasm: bytes) -> Iterator[tuple[int, int, _Reader]]:
    """Each section after the header: its id, where it starts, a reader of its payload."""
    top = _Reader(wasm, 8)
    while top.pos < top.end:
        start = top.pos
        section = top.byte()
        size = top.uleb()
        if top.pos + size > top.end:
            raise ValueError("section runs past the end of the module")
        top.pos += size
        yield section, start, _Reader(wasm, top.pos - size, top.pos)


def _parse(wasm: bytes) -> Interface | None:
    if len(wasm) < 8 or not wasm.startswith(b"\0asm"):
        return None
    out = Interface()

    def functype(index: int) -> FuncType:
        ty = out.types[index]
        if ty is None:
            raise ValueError(f"type {index} is not a function type")
        return ty

    for section, _, r in _sections(wasm):
        if section == 1:  # types
            for _ in range(r.uleb()):
                if r.pos < r.end and r.data[r.pos] == _REC:
                    r.pos += 1
                    out.types += [_subtype(r) for _ in range(r.uleb())]
                else:
                    out.types.append(_subtype(r))
        elif section == 2:  # imports
            for _ in range(r.uleb()):
                module, field = r.name(), r.name()
                kind = r.byte()
                ty = None
                if kind == 0x00:
                    index = r.uleb()
                    out.func_types.append(index)
                    ty = functype(index)
                elif kind == 0x01:
                    r.valtype()
                    r.limits()
                elif kind == 0x02:
                    r.limits()
                elif kind == 0x03:
                    r.valtype()
                    r.byte()
                elif kind == 0x04:
                    r.byte()
                    functype(r.uleb())
                else:
                    raise ValueError(f"unknown import kind 0x{kind:02x}")
                out.imports.append((module, field, _EXTERN_KINDS[kind], ty))
        elif section == 3:  # functions
            out.func_types += [r.uleb() for _ in range(r.uleb())]
        elif section == 8:  # start
            out.has_start = True
        elif section == 7:  # exports
            for _ in range(r.uleb()):
                name = r.name()
                kind, index = r.byte(), r.uleb()
                ty = functype(out.func_types[index]) if kind == 0x00 else None
                out.exports.append((name, _EXTERN_KINDS[kind], ty))
    return out


# --- Exposing a module's internal state, so a released instance can be reset ------------------

#: Added exports are named with this prefix; no other export may use it.
STATE_PREFIX = "vudo:state:"

# Standard sections in the order a module must have them (custom sections, id 0, anywhere).
_SECTION_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12,
                  11: 13}  # fmt: skip
_EXPORT_SECTION = 7
_MEM_SHARED, _MEM_64 = 0x02, 0x04
# Opcodes allowed in a constant expression, by the immediates that follow them.
_CONST_SLEB = frozenset({0x41, 0x42})  # i32.const, i64.const
_CONST_ULEB = frozenset({0x23, 0xD2})  # global.get, ref.func
_CONST_FIXED = {0x43: 4, 0x44: 8}  # f32.const, f64.const
_CONST_BARE = frozenset({0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E})  # i32/i64 add, sub, mul
# GC instructions (prefix 0xFB) allowed in a constant expression, by their number of
# u32 immediates: struct.new, struct.new_default, array.new, array.new_default,
# array.new_fixed, any.convert_extern, extern.convert_any, ref.i31.
_CONST_GC = {0x00: 1, 0x01: 1, 0x06: 1, 0x07: 1, 0x08: 2, 0x1A: 0, 0x1B: 0, 0x1C: 0}
_END = 0x0B


@attrs.frozen
class StateExports:
    """What :func:`expose_state` exported: the names under which the host reaches every
    piece of an instance's state that changes after instantiation, and whether restoring
    those from outside resets the instance completely.

    When ``resettable`` is False nothing was added (the module is returned unchanged) and
    the three tuples are empty.
    """

    #: Export names (existing or added) of every defined mutable global, in index order.
    globals: tuple[str, ...] = ()
    #: Export names of every defined memory, in index order.
    memories: tuple[str, ...] = ()
    #: Export names of every defined table, in index order.
    tables: tuple[str, ...] = ()
    #: False when some state cannot be restored from outside; ``why`` then says which.
    resettable: bool = True
    why: str = ""


def _not_resettable(why: str) -> StateExports:
    return StateExports(resettable=False, why=why)


def expose_state(wasm: bytes) -> tuple[bytes, StateExports]:
    """The module with every defined mutable global, memory and table exported (added
    exports are named ``STATE_PREFIX + 'global<N>'`` / ``'memory<N>'`` / ``'table<N>'``, N
    the index in its index space including imports), and what was exported. Returns the
    input bytes unchanged (the same object) when nothing needs adding, and when the module
    cannot be reset (``resettable`` False, with a reason) or cannot be read. Never raises.

    Only the section headers and the import, table, memory, global, export, element and
    data sections are read; function bodies are skipped by size.
    """
    try:
        return _expose(wasm)
    except (ValueError, IndexError, KeyError) as exc:
        return wasm, _not_resettable(f"unreadable: {exc}")


def _limits(r: _Reader) -> int:
    """Table or memory limits; returns their flags."""
    flags = r.byte()
    if flags & ~0x0F:
        raise ValueError(f"unknown limits flags 0x{flags:02x}")
    r.uleb()
    if flags & 0x01:
        r.uleb()
    if flags & 0x08:  # custom page size
        r.uleb()
    return flags


def _mutability(r: _Reader) -> tuple[bool, bool]:
    """A global's mutability byte: (mutable, shared)."""
    b = r.byte()
    if b > 0x03:
        raise ValueError(f"bad global mutability 0x{b:02x}")
    return bool(b & 0x01), bool(b & 0x02)


def _const_expr(r: _Reader) -> None:
    """Skip a constant expression, through its closing ``end``."""
    while True:
        op = r.byte()
        if op == _END:
            return
        if op in _CONST_SLEB:
            r.sleb()
        elif op in _CONST_ULEB:
            r.uleb()
        elif op in _CONST_FIXED:
            r.pos += _CONST_FIXED[op]
        elif op == 0xD0:  # ref.null
            r.heaptype()
        elif op == 0xFD:  # SIMD: only v128.const is constant
            sub = r.uleb()
            if sub != 0x0C:
                raise ValueError(f"non-constant instruction 0xfd {sub} in a constant expression")
            r.pos += 16
        elif op == 0xFB:
            sub = r.uleb()
            if sub not in _CONST_GC:
                raise ValueError(f"non-constant instruction 0xfb {sub} in a constant expression")
            for _ in range(_CONST_GC[sub]):
                r.uleb()
        elif op not in _CONST_BARE:
            raise ValueError(f"unknown instruction 0x{op:02x} in a constant expression")
        if r.pos > r.end:
            raise ValueError("constant expression runs past the end of its section")


def _reftype_limits(r: _Reader) -> tuple[str, int]:
    """A table type: element type and limits flags."""
    return r.valtype(), _limits(r)


def _uleb_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _name_bytes(name: str) -> bytes:
    raw = name.encode()
    return _uleb_bytes(len(raw)) + raw


class _State:
    """What :func:`_expose` learns while reading the sections."""

    def __init__(self) -> None:
        self.imported = {"func": 0, "table": 0, "memory": 0, "global": 0}
        self.tables: list[str] = []  # element type of every defined table
        self.memories = 0
        self.mutable_globals: list[tuple[int, str]] = []  # (index, value type) of defined ones
        self.exports: dict[tuple[int, int], str] = {}  # (kind, index) -> first export name
        self.export_names: set[str] = set()
        self.export_section: tuple[int, int, int, int] | None = None  # start, body, end, count
        self.insert_at = 8  # where a new export section would go
        self.why = ""

    def refuse(self, why: str) -> None:
        if not self.why:
            self.why = why


def _imports(r: _Reader, st: _State) -> None:
    for _ in range(r.uleb()):
        module, field = r.name(), r.name()
        what = f"{module}.{field}"
        kind = r.byte()
        if kind == 0x00:
            r.uleb()
            st.imported["func"] += 1
        elif kind == 0x01:
            _reftype_limits(r)
            st.imported["table"] += 1
            st.refuse(f"imported table {what}")
        elif kind == 0x02:
            _limits(r)
            st.imported["memory"] += 1
            st.refuse(f"imported memory {what}")
        elif kind == 0x03:
            r.valtype()
            mutable, shared = _mutability(r)
            st.imported["global"] += 1
            if mutable or shared:
                st.refuse(f"imported mutable global {what}")
        elif kind == 0x04:
            r.byte()
            r.uleb()
        else:
            raise ValueError(f"unknown import kind 0x{kind:02x}")


def _tables(r: _Reader, st: _State) -> None:
    for _ in range(r.uleb()):
        with_init = r.pos + 1 < r.end and r.data[r.pos] == 0x40 and r.data[r.pos + 1] == 0x00
        if with_init:
            r.pos += 2
        st.tables.append(_reftype_limits(r)[0])
        if with_init:
            _const_expr(r)


def _memories(r: _Reader, st: _State) -> None:
    for _ in range(r.uleb()):
        flags = _limits(r)
        index = st.imported["memory"] + st.memories
        if flags & _MEM_SHARED:
            st.refuse(f"shared memory {index}")
        if flags & _MEM_64:
            st.refuse(f"64-bit memory {index}")
        st.memories += 1


def _globals(r: _Reader, st: _State) -> None:
    for i in range(r.uleb()):
        ty = r.valtype()
        mutable, shared = _mutability(r)
        _const_expr(r)
        index = st.imported["global"] + i
        if shared:
            st.refuse(f"shared global {index}")
        if mutable:
            st.mutable_globals.append((index, ty))


def _exports(r: _Reader, st: _State, start: int) -> None:
    count = r.uleb()
    body = r.pos
    for _ in range(count):
        name = r.name()
        kind, index = r.byte(), r.uleb()
        if kind > 0x04:
            raise ValueError(f"unknown export kind 0x{kind:02x}")
        st.exports.setdefault((kind, index), name)
        st.export_names.add(name)
    st.export_section = (start, body, r.end, count)


def _elements(r: _Reader, st: _State) -> None:
    for i in range(r.uleb()):
        flags = r.uleb()
        if flags > 7:
            raise ValueError(f"unknown element segment flags {flags}")
        if flags in (1, 5):
            st.refuse(f"passive element segment {i}")
        if flags in (2, 6):
            r.uleb()  # table index
        if not flags & 0x01:  # active: offset
            _const_expr(r)
        if flags & 0x04:  # expressions
            if flags != 4:
                r.valtype()
            for _ in range(r.uleb()):
                _const_expr(r)
        else:  # function indices
            if flags != 0:
                r.byte()  # element kind
            for _ in range(r.uleb()):
                r.uleb()


def _data(r: _Reader, st: _State) -> None:
    data, end = r.data, r.end
    for i in range(r.uleb()):
        # Fast path for the common segment, `0x00 (i32.const n) end` and a size below 2**21:
        # a module may have thousands of segments, and this loop is most of the time spent.
        p = r.pos
        if p + 3 < end and data[p] == 0x00 and data[p + 1] == 0x41:
            p += 2
            while p < end and data[p] & 0x80 and p - r.pos < 7:
                p += 1
            p += 1
            if p + 1 < end and data[p] == _END:
                b0 = data[p + 1]
                if not b0 & 0x80:
                    size, p = b0, p + 2
                elif p + 2 < end and not data[p + 2] & 0x80:
                    size, p = (b0 & 0x7F) | data[p + 2] << 7, p + 3
                elif p + 3 < end and not data[p + 3] & 0x80:
                    size = (b0 & 0x7F) | (data[p + 2] & 0x7F) << 7 | data[p + 3] << 14
                    p += 4
                else:
                    size = -1
                if size >= 0:
                    if p + size > end:
                        raise ValueError("data segment runs past the end of its section")
                    r.pos = p + size
                    continue
        flags = r.uleb()
        if flags == 1:
            st.refuse(f"passive data segment {i}")
        elif flags in (0, 2):
            if flags == 2:
                r.uleb()  # memory index
            _const_expr(r)
        else:
            raise ValueError(f"unknown data segment flags {flags}")
        size = r.uleb()
        if r.pos + size > r.end:
            raise ValueError("data segment runs past the end of its section")
        r.pos += size


def _expose(wasm: bytes) -> tuple[bytes, StateExports]:
    if len(wasm) < 8 or not wasm.startswith(b"\0asm"):
        raise ValueError("not a wasm module")
    if wasm[4:8] != b"\x01\0\0\0":
        raise ValueError("not a core wasm module, version 1")
    st = _State()
    seen: set[int] = set()
    last_rank = 0
    for section, start, r in _sections(wasm):
        if section == 0:
            continue
        rank = _SECTION_ORDER.get(section)
        if rank is None:
            raise ValueError(f"unknown section id {section}")
        if section in seen:
            raise ValueError(f"duplicate section id {section}")
        seen.add(section)
        if rank < last_rank:
            raise ValueError(f"section id {section} out of order")
        last_rank = rank
        if rank < _SECTION_ORDER[_EXPORT_SECTION]:
            st.insert_at = r.end
        reader = {2: _imports, 4: _tables, 5: _memories, 6: _globals, 9: _elements, 11: _data}
        if section == _EXPORT_SECTION:
            _exports(r, st, start)
        elif section in reader:
            reader[section](r, st)
        else:
            continue
        if r.pos != r.end:
            raise ValueError(f"section id {section} has {r.end - r.pos} bytes left over")

    for index, ty in st.mutable_globals:
        if ty not in DESCRIBABLE:
            st.refuse(f"global {index} of type {ty}, which the host cannot read")
    for i, ty in enumerate(st.tables):
        if ty not in ("funcref", "externref"):
            st.refuse(f"table {st.imported['table'] + i} of type {ty}, which the host cannot read")
    if st.why:
        return wasm, _not_resettable(st.why)

    added: list[bytes] = []

    def name_of(kind: int, label: str, index: int) -> str:
        existing = st.exports.get((kind, index))
        if existing is not None:
            return existing
        name = f"{STATE_PREFIX}{label}{index}"
        if name in st.export_names:
            raise _Collision(name)
        added.append(_name_bytes(name) + bytes([kind]) + _uleb_bytes(index))
        return name

    try:
        state = StateExports(
            globals=tuple(name_of(0x03, "global", i) for i, _ in st.mutable_globals),
            memories=tuple(
                name_of(0x02, "memory", st.imported["memory"] + i) for i in range(st.memories)
            ),
            tables=tuple(
                name_of(0x01, "table", st.imported["table"] + i) for i in range(len(st.tables))
            ),
        )
    except _Collision as exc:
        return wasm, _not_resettable(f"export name {exc.args[0]!r} is already taken")
    if not added:
        return wasm, state

    view = memoryview(wasm)
    entries: bytes | memoryview = b""
    if st.export_section is None:
        count, head, tail = len(added), st.insert_at, st.insert_at
    else:
        head, body, tail, old_count = st.export_section
        count, entries = old_count + len(added), view[body:tail]
    content = b"".join([_uleb_bytes(count), entries, *added])
    new_section = bytes([_EXPORT_SECTION]) + _uleb_bytes(len(content)) + content
    return b"".join([view[:head], new_section, view[tail:]]), state


class _Collision(Exception):
    pass
