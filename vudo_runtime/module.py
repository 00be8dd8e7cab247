"""A module as the runtime sees it: its wasm bytes from a source, and its interface."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from pathlib import Path

import attrs
import wasmtime

from vudo_runtime import _native
from vudo_runtime._binary import STATE_PREFIX
from vudo_runtime.cache import interface_of, is_compiled
from vudo_runtime.engine import EngineSettings
from vudo_runtime.errors import SpiritLoadError

Source = str | bytes | bytearray | memoryview | os.PathLike[str]


def str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    """A typed ``tuple`` converter for attrs fields of names and types."""
    return tuple(values)


@attrs.frozen
class Signature:
    """A wasm function type as strings like ``"i64"``: ``Signature(("i32", "i32"), ())``.

    Both the signature of an export and the one a host function declares.
    """

    params: tuple[str, ...] = attrs.field(converter=str_tuple)
    results: tuple[str, ...] = attrs.field(converter=str_tuple, default=())

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


def read_source(source: Source, name: str | None) -> tuple[bytes, str, str]:
    """``(wasm bytes, spirit name, label for messages)``; WAT text is compiled to wasm."""
    if isinstance(source, bytes | bytearray | memoryview):
        data, label, stem = bytes(source), "<bytes>", "spirit"
    elif isinstance(source, str | os.PathLike):
        label = os.fspath(source)
        stem = name or Path(label).stem
        try:
            key = _file_key(label)
            if (known := _sources.get(key)) is not None:
                return known, stem, label
            data = Path(label).read_bytes()
        except FileNotFoundError:
            raise SpiritLoadError(f"Spirit file not found: {label}") from None
        except OSError as exc:
            raise SpiritLoadError(f"cannot read Spirit file {label}: {exc.strerror}") from exc
        wasm = _to_wasm(data, label)
        if len(_sources) >= 256:
            _sources.clear()
        _sources[key] = wasm
        return wasm, stem, label
    else:
        raise TypeError(f"source must be a path or bytes, not {type(source).__name__}")
    return _to_wasm(data, label), name or stem, label


def default_name(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return Path(os.fspath(source)).stem
    return "spirit"


# The wasm of files read before, by (path, mtime, size): loading a known file again reads
# no bytes and hashes nothing new, so it can run on the event loop thread.
_sources: dict[tuple[str, int, int], bytes] = {}


def _file_key(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    st = os.stat(path)
    return (os.fspath(path), st.st_mtime_ns, st.st_size)


def source_key(source: Source) -> Hashable | None:
    """What identifies ``source``'s contents cheaply: the bytes themselves, or a file's
    (path, mtime, size); None when nothing cheap does (a bytearray, a missing file)."""
    if isinstance(source, bytes):
        return source  # its hash is computed once and kept by the object
    if isinstance(source, str | os.PathLike):
        try:
            return _file_key(source)
        except OSError:
            return None
    return None


def known_wasm(source: Source, settings: EngineSettings) -> bytes | None:
    """The wasm of ``source`` when loading it needs no file read and no compilation (it is
    cheap enough for the event loop thread), else None."""
    if isinstance(source, bytes | bytearray | memoryview):
        wasm: bytes | None = bytes(source)
    elif isinstance(source, str | os.PathLike):
        try:
            wasm = _sources.get(_file_key(source))
        except OSError:
            return None
    else:
        return None
    return wasm if wasm is not None and is_compiled(wasm, settings) else None


def _to_wasm(data: bytes, label: str) -> bytes:
    """Check the magic; compile WAT text to wasm."""
    if not data:
        raise SpiritLoadError(f"{label} is empty: expected a WebAssembly module")
    if not data.startswith(b"\0asm"):
        text = _as_wat(data)
        if text is None:
            raise SpiritLoadError(
                f"{label} is not WebAssembly: it starts with {data[:8]!r}, not the wasm magic "
                "b'\\x00asm' (and is not WAT text either)"
            )
        try:
            data = bytes(wasmtime.wat2wasm(text))
        except wasmtime.WasmtimeError as exc:
            raise SpiritLoadError(f"{label} is WAT text that does not compile: {exc}") from exc
    return data


def _as_wat(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip()
    return text if stripped.startswith(("(", ";;")) else None


@attrs.frozen
class ModuleInfo:
    """What a compiled module exports, read once per module."""

    exports: dict[str, str]
    signatures: dict[str, Signature]
    memory: str | None

    @classmethod
    def of(cls, module: wasmtime.Module) -> ModuleInfo:
        """From the binary when it was read at compile time (fast), else by reflection."""
        interface = interface_of(module)
        if interface is not None:
            kinds = {
                name: ("table" if kind == "tag" else kind) for name, kind, _ in interface.exports
            }
            sigs = {name: Signature(*ty) for name, _, ty in interface.exports if ty is not None}
            mems = [name for name, kind in kinds.items() if kind == "memory"]
            memory = "memory" if "memory" in mems else (mems[0] if mems else None)
            return cls(kinds, sigs, memory)
        exports: dict[str, str] = {}
        signatures: dict[str, Signature] = {}
        memory = None
        for e in module.exports:
            if e.name.startswith(STATE_PREFIX):  # the runtime's own, for resets
                continue
            ty = e.type
            if isinstance(ty, wasmtime.FuncType):
                exports[e.name] = "func"
                signatures[e.name] = Signature(
                    tuple(map(_native.type_name, ty.params)),
                    tuple(map(_native.type_name, ty.results)),
                )
            elif isinstance(ty, wasmtime.MemoryType):
                exports[e.name] = "memory"
                if memory is None or e.name == "memory":
                    memory = e.name
            elif isinstance(ty, wasmtime.GlobalType):
                exports[e.name] = "global"
            else:
                exports[e.name] = "table"
        return cls(exports, signatures, memory)


_infos: dict[wasmtime.Module, ModuleInfo] = {}


def module_info(module: wasmtime.Module) -> ModuleInfo:
    info = _infos.get(module)
    if info is None:
        info = _infos[module] = ModuleInfo.of(module)
    return info


def dol_role(name: str, sig: Signature) -> tuple[str, str, str]:
    """What DOL's naming makes of an export (DOL-ABI.md, exports):
    ``("constructor", gene, "")`` for ``new_<Gene>`` returning an i32 pointer,
    ``("method", gene, method)`` for ``<Gene>.<method>`` taking ``self: i32`` first,
    else ``("function", "", name)``."""
    gene, dot, method = name.partition(".")
    if name.startswith("new_") and len(name) > 4 and sig.results == ("i32",):
        return ("constructor", name[4:], "")
    if dot and gene and method and sig.params[:1] == ("i32",):
        return ("method", gene, method)
    return ("function", "", name)
