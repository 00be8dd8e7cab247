"""A minimal reader of the wasm binary: screens what the engine's C API cannot describe.

wasmtime's C API aborts the whole process when it is asked for the parameter or result
types of a function that uses ``v128``. Before the runtime reads any import or export
signature, this module finds such functions in the binary, so they are refused with a
clear error instead.
"""

from __future__ import annotations

_V128 = 0x7B
_FUNC_FORM = 0x60


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
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result
            if shift > 70:
                raise ValueError("LEB128 too long")

    def name(self) -> str:
        n = self.uleb()
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", "replace")

    def valtype(self) -> int:
        b = self.byte()
        if b in (0x63, 0x64):  # (ref null? heaptype): the heap type follows
            self.uleb()
        return b

    def limits(self) -> None:
        flags = self.byte()
        self.uleb()
        if flags & 0x01:
            self.uleb()
        if flags & 0x08:  # custom page size
            self.uleb()


_VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
             0x70: "funcref", 0x6F: "externref"}  # fmt: skip
_EXTERN_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}

FuncType = tuple[tuple[str, ...], tuple[str, ...]]


class Interface:
    """The imports and exports of a module, read from its binary."""

    def __init__(self) -> None:
        self.types: list[FuncType] = []
        self.func_types: list[int] = []  # type index of every function, imported first
        self.imports: list[tuple[str, str, str, FuncType | None]] = []
        self.exports: list[tuple[str, str, FuncType | None]] = []
        self.has_start = False  # a start function runs guest code while instantiating

    def unsupported(self) -> list[str]:
        """Imports and exports whose function type uses v128."""
        found = [
            f"import {module}.{name}"
            for module, name, _, ty in self.imports
            if ty is not None and "v128" in ty[0] + ty[1]
        ]
        found += [
            f"export {name!r}"
            for name, _, ty in self.exports
            if ty is not None and "v128" in ty[0] + ty[1]
        ]
        return found


def read_interface(wasm: bytes) -> Interface | None:
    """The module's interface, or None where this reader cannot be sure of it (GC types,
    malformed input: the engine then reports or describes it itself)."""
    try:
        return _parse(wasm)
    except (ValueError, IndexError, KeyError):
        return None


def unsupported_signatures(wasm: bytes) -> list[str]:
    """Imports and exports whose function type uses v128 (``"export 'f'"`` ...)."""
    interface = read_interface(wasm)
    return interface.unsupported() if interface is not None else []


def _parse(wasm: bytes) -> Interface | None:
    if len(wasm) < 8 or not wasm.startswith(b"\0asm"):
        return None
    top = _Reader(wasm, 8)
    out = Interface()

    def functype(index: int) -> FuncType:
        return out.types[index]

    def valtypes(r: _Reader) -> tuple[str, ...]:
        return tuple(_VALTYPES.get(r.valtype(), "ref") for _ in range(r.uleb()))

    while top.pos < top.end:
        section = top.byte()
        size = top.uleb()
        r = _Reader(wasm, top.pos, top.pos + size)
        top.pos += size
        if section == 1:  # types
            for _ in range(r.uleb()):
                if r.byte() != _FUNC_FORM:  # GC rec/sub types: indices no longer simple
                    return None
                params = valtypes(r)
                out.types.append((params, valtypes(r)))
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
                    r.uleb()
                else:
                    return None
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
