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


def unsupported_signatures(wasm: bytes) -> list[str]:
    """Imports and exports whose function type uses v128 (``"export 'f'"`` ...).

    Returns ``[]`` for anything it cannot read: the engine then reports malformed input.
    """
    try:
        return _scan(wasm)
    except (ValueError, IndexError):
        return []


def _scan(wasm: bytes) -> list[str]:
    if len(wasm) < 8 or not wasm.startswith(b"\0asm"):
        return []
    top = _Reader(wasm, 8)
    bad_types: set[int] = set()
    func_types: list[int] = []  # type index of every function, imported first
    found: list[str] = []
    unknown_forms = False
    while top.pos < top.end:
        section = top.byte()
        size = top.uleb()
        r = _Reader(wasm, top.pos, top.pos + size)
        top.pos += size
        if section == 1:  # types
            for index in range(r.uleb()):
                if r.byte() != _FUNC_FORM:  # GC rec/sub types: indices no longer simple
                    unknown_forms = True
                    break
                types = [r.valtype() for _ in range(r.uleb())]
                types += [r.valtype() for _ in range(r.uleb())]
                if _V128 in types:
                    bad_types.add(index)
        elif section == 2:  # imports
            for _ in range(r.uleb()):
                module, field = r.name(), r.name()
                kind = r.byte()
                if kind == 0x00:
                    ty = r.uleb()
                    func_types.append(ty)
                    if ty in bad_types:
                        found.append(f"import {module}.{field}")
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
                    return found
        elif section == 3:  # functions
            func_types += [r.uleb() for _ in range(r.uleb())]
        elif section == 7:  # exports
            for _ in range(r.uleb()):
                name = r.name()
                kind, index = r.byte(), r.uleb()
                if kind == 0x00 and index < len(func_types) and func_types[index] in bad_types:
                    found.append(f"export {name!r}")
    if unknown_forms:
        return []
    return found
