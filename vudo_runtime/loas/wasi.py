"""The ``wasi`` Loa: WASI preview 1 (wasmtime's own implementation), granted like any other.

A Spirit that imports ``wasi_snapshot_preview1`` gets those imports only when it is
granted ``wasi``; what it may reach is what :class:`WasiOptions` gives it: its arguments
and environment, the directories preopened for it (read-only or read-write), stdin, and
where stdout and stderr go. Nothing of the host's file system, environment or arguments
is visible otherwise.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import wasmtime
from wasmtime import _ffi

from vudo_runtime.loa import HostContext, Loa
from vudo_runtime.module import str_tuple

#: Import modules WASI preview 1 programs use.
WASI_MODULES = ("wasi_snapshot_preview1",)

#: Where a stream goes: "inherit" (this process's), a file path, a callable taking bytes,
#: or None (stdin: empty; stdout/stderr: discarded).
Stream = str | os.PathLike[str] | Callable[[bytes], Any] | None


def _path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


@attrs.frozen
class Preopen:
    """A host directory the guest sees at ``guest`` (``--dir HOST::GUEST[:ro]``)."""

    host: str = attrs.field(converter=_path)
    guest: str = attrs.field()
    readonly: bool = False

    @guest.default
    def _guest_default(self) -> str:
        return self.host

    @classmethod
    def parse(cls, spec: str) -> Preopen:
        """``HOST``, ``HOST::GUEST``, either with ``:ro`` at the end (the CLI's ``--dir``)."""
        readonly = spec.endswith(":ro")
        if readonly:
            spec = spec[: -len(":ro")]
        host, sep, guest = spec.partition("::")
        if not host or (sep and not guest):
            raise ValueError(f"--dir {spec!r}: expected HOST, HOST::GUEST, or either + ':ro'")
        return cls(host, guest or host, readonly)


def _preopens(values: Iterable[Preopen | str]) -> tuple[Preopen, ...]:
    return tuple(v if isinstance(v, Preopen) else Preopen.parse(v) for v in values)


def _env(
    values: Mapping[str, str] | Iterable[str | tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    if isinstance(values, Mapping):
        return tuple((str(k), str(v)) for k, v in values.items())
    pairs = []
    for item in values:
        if isinstance(item, tuple):
            pairs.append((str(item[0]), str(item[1])))
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env {item!r}: expected NAME=VALUE")
        pairs.append((key, value))
    return tuple(pairs)


def _check_stdin(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bytes | str | os.PathLike):
        raise TypeError(f"stdin must be bytes, a file path or 'inherit', not {value!r}")


@attrs.frozen
class WasiOptions:
    """What a WASI program sees: ``args`` (after the program name), ``env``, ``dirs``
    (:class:`Preopen` or ``"HOST[::GUEST][:ro]"``), ``stdin`` (bytes, a file path,
    ``"inherit"`` or None for empty), ``stdout``/``stderr`` (``"inherit"``, a file path, a
    callable taking bytes, or None to discard)."""

    args: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    env: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_env)
    dirs: tuple[Preopen, ...] = attrs.field(default=(), converter=_preopens)
    stdin: bytes | str | os.PathLike[str] | None = attrs.field(default=None, validator=_check_stdin)
    stdout: Stream = "inherit"
    stderr: Stream = "inherit"

    def apply(self, store: wasmtime.Store, program: str) -> None:
        """Give ``store`` a WASI state of its own made from these options (the one it had
        before, and its output callbacks, are dropped)."""
        keys: list[int] = []
        store.set_wasi(self.config(program, keys))
        _forget(_store_keys.pop(store, []))
        if keys:
            _store_keys[store] = keys
            weakref.finalize(store, _forget, keys)

    def config(self, program: str, keys: list[int] | None = None) -> wasmtime.WasiConfig:
        """A fresh WasiConfig (one per Store: each instance gets its own WASI state);
        ``keys`` collects the ids of the output callbacks it holds."""
        config = wasmtime.WasiConfig()
        config.argv = [program, *self.args]
        config.env = list(self.env)
        for d in self.dirs:
            if not Path(d.host).is_dir():
                raise ValueError(f"WASI directory {d.host!r} does not exist or is no directory")
            config.preopen_dir(d.host, d.guest, not d.readonly)
        _stdin(config, self.stdin)
        for which, stream in (("stdout", self.stdout), ("stderr", self.stderr)):
            key = _output(config, which, stream)
            if key and keys is not None:
                keys.append(key)
        return config


def _stdin(config: wasmtime.WasiConfig, stdin: bytes | str | os.PathLike[str] | None) -> None:
    if stdin == "inherit":
        config.inherit_stdin()
    elif isinstance(stdin, bytes):
        # The C API takes the bytes (wasmtime-py has no wrapper): the vector is copied
        # from them and then owned by the config.
        vec = _ffi.wasm_byte_vec_t()
        buf = (ctypes.c_ubyte * len(stdin)).from_buffer_copy(stdin)
        _ffi.wasm_byte_vec_new(ctypes.byref(vec), len(stdin), buf)
        _ffi.wasi_config_set_stdin_bytes(config.ptr(), ctypes.byref(vec))
    elif stdin is not None:
        config.stdin_file = os.fspath(stdin)


def _output(config: wasmtime.WasiConfig, which: str, stream: Stream) -> int:
    """Set one output stream; returns the id of its callback (0: none)."""
    if stream == "inherit":
        getattr(config, f"inherit_{which}")()
        return 0
    if stream is not None and not callable(stream):
        setattr(config, f"{which}_file", os.fspath(stream))
        return 0
    # Our own callback registry, not wasmtime-py's: wasmtime drops a stream (and calls its
    # finalizer) on a thread of its own, which at interpreter exit calls into a finalized
    # interpreter and aborts; so no finalizer is given, and ids are never reused, so a
    # late write of a dropped stream can reach no other Spirit's callback.
    key = next(_ids)
    _outputs[key] = _discard if stream is None else stream
    setter = getattr(_ffi, f"wasi_config_set_{which}_custom")
    setter(config.ptr(), _write, key, _NO_FINALIZER)
    return key


def _discard(data: bytes) -> None:
    return None


_outputs: dict[int, Callable[[bytes], Any]] = {}
_ids = itertools.count(1)
_store_keys: weakref.WeakKeyDictionary[wasmtime.Store, list[int]] = weakref.WeakKeyDictionary()


def _forget(keys: list[int]) -> None:
    for key in keys:
        _outputs.pop(key, None)


def _write_to(key: int | None, data: Any, size: int) -> int:
    fn = _outputs.get(key or 0)
    if fn is None:  # its Spirit is gone: the bytes go nowhere
        return size
    try:
        fn(ctypes.string_at(data, size))
    except Exception:  # the guest sees a failed write (EIO), the host keeps running
        return -errno.EIO
    return size


_write: Any = ctypes.CFUNCTYPE(
    ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t
)(_write_to)
_NO_FINALIZER: Any = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()


def _provides(ctx: HostContext) -> dict[str, Any]:
    return {}  # the functions are wasmtime's own, defined by the linker (linking.py)


#: Granted by name: ``loas=["wasi"]``.
WASI = Loa(name="wasi", version="preview1", capabilities=(), provides=_provides)
