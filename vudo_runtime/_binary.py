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


def _parse(wasm: bytes) -> Interface | None:
    if len(wasm) < 8 or not wasm.startswith(b"\0asm"):
        return None
    top = _Reader(wasm, 8)
    out = Interface()

    def functype(index: int) -> FuncType:
        ty = out.types[index]
        if ty is None:
            raise ValueError(f"type {index} is not a function type")
        return ty

    while top.pos < top.end:
        section = top.byte()
        size = top.uleb()
        if top.pos + size > top.end:
            raise ValueError("section runs past the end of the module")
        r = _Reader(wasm, top.pos, top.pos + size)
        top.pos += size
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
