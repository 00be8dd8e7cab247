"""Compile once: an in-process and an on-disk cache of compiled modules.

Deserializing a compiled module is loading trusted native code, so the disk cache
lives in a directory private to the user (0700, owned by them), entries are written
atomically and carry a SHA-256 of their key and payload: a corrupt, truncated or foreign
entry (also one filed under another module's key) is recompiled and replaced, never
handed to the engine. Entries are opened without following symlinks or blocking, and only
a regular file of bounded size is read: anything else counts as damaged.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import tempfile
import threading
import warnings
from pathlib import Path

import wasmtime

from vudo_runtime._binary import Interface, StateExports, expose_state, read_interface
from vudo_runtime.engine import EngineSettings, get_engine
from vudo_runtime.errors import CacheWarning, SpiritLoadError, root_cause

CacheOption = bool | str | os.PathLike[str]

_MAGIC = b"VUDO-CWASM-2\n"
_DIGEST = 32
#: No compiled module comes near this; a larger entry is refused unread (never read unbounded).
_MAX_ENTRY_BYTES = 1 << 30
#: A symlinked entry is refused (ELOOP); a FIFO opens at once instead of waiting for a writer.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)

_modules: dict[tuple[EngineSettings, bytes], wasmtime.Module] = {}
_modules_lock = threading.Lock()
_interfaces: dict[wasmtime.Module, Interface] = {}
_states: dict[wasmtime.Module, StateExports] = {}


def default_cache_dir() -> Path:
    """``$VUDO_CACHE_DIR``, else ``$XDG_CACHE_HOME/vudo``, else ``~/.cache/vudo``."""
    if env := os.environ.get("VUDO_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vudo"


def resolve_cache_dir(cache: CacheOption) -> Path | None:
    """The directory ``cache=`` names (None: no disk cache)."""
    if cache is False:
        return None
    if cache is True:
        return default_cache_dir()
    return Path(cache)


def _private_dir(path: Path) -> Path | None:
    """Create ``path`` 0700, or refuse it (with a warning) if others could write there."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        warnings.warn(
            f"vudo cache directory {path} is unusable ({exc}); compiling without the cache. "
            "Set VUDO_CACHE_DIR to a writable directory or pass cache=False.",
            CacheWarning,
            stacklevel=4,
        )
        return None
    foreign = _foreign(st)
    if foreign or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = "is owned by another user" if foreign else "is writable by group or others"
        warnings.warn(
            f"vudo cache directory {path} {why}; refusing to load compiled code from it and "
            f"compiling without the cache. Fix with `chmod 700 {path}` (as its owner) or "
            "point VUDO_CACHE_DIR at a private directory.",
            CacheWarning,
            stacklevel=4,
        )
        return None
    if (exposed := _exposed_parent(path)) is not None:
        # Still used: every entry is checked for its owner and checksum. But whoever can
        # write the parent can rename the cache directory away or swap in another.
        warnings.warn(
            f"vudo cache directory {path} sits inside {exposed}, which anyone can write to "
            "(world-writable, no sticky bit), so others could rename or replace the cache "
            "directory. Use a cache directory under a private parent: set VUDO_CACHE_DIR or "
            "pass cache=path.",
            CacheWarning,
            stacklevel=4,
        )
    return path


def _exposed_parent(path: Path) -> Path | None:
    """The nearest ancestor of ``path`` that is world-writable without the sticky bit."""
    for parent in path.absolute().parents:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            return parent
    return None


def _foreign(st: os.stat_result) -> bool:
    """Owned by another user (never on systems without user ids)."""
    getuid = getattr(os, "getuid", None)
    return getuid is not None and st.st_uid != getuid()


@functools.lru_cache(maxsize=16)
def wasm_digest(wasm: bytes) -> bytes:
    """SHA-256 of a module, remembered: a load asks for it several times (cache, pool)."""
    return hashlib.sha256(wasm).digest()


def entry_path(directory: Path, digest: bytes, settings: EngineSettings) -> Path:
    """Cache file for a module: keyed by its bytes, the wasmtime version and the settings."""
    # Entries are compiled from the module with its state exported (expose_state).
    key = hashlib.sha256(digest + settings.key.encode() + b";state-exports").hexdigest()
    return directory / f"{key}.cwasm"


def _checksum(path: Path, payload: bytes | memoryview) -> bytes:
    """SHA-256 of the entry's key (its file name) and payload: an entry fits only its key."""
    digest = hashlib.sha256(path.name.encode())
    digest.update(payload)
    return digest.digest()


def _read_entry(path: Path, engine: wasmtime.Engine) -> wasmtime.Module | None:
    """The cached module, or None when the entry is missing, foreign or damaged."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:  # missing, or a symlink (ELOOP)
        return None
    try:
        st = os.fstat(fd)
        # A FIFO, device or directory is no entry; neither is a file too large to be one.
        if not stat.S_ISREG(st.st_mode) or _foreign(st) or st.st_size > _MAX_ENTRY_BYTES:
            return None
        blob = _read_at_most(fd, _MAX_ENTRY_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    if blob is None:
        return None
    header = len(_MAGIC) + _DIGEST
    if len(blob) <= header or not blob.startswith(_MAGIC):
        return None
    payload = memoryview(blob)[header:]
    if _checksum(path, payload) != blob[len(_MAGIC) : header]:
        return None
    try:
        return wasmtime.Module.deserialize(engine, payload.tobytes())
    except wasmtime.WasmtimeError:  # e.g. written by an incompatible engine build
        return None


def _read_at_most(fd: int, limit: int) -> bytes | None:
    """All of ``fd``, or None if it holds more than ``limit`` bytes (it may grow after fstat)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, min(limit + 1 - size, 1 << 24)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


def _write_entry(path: Path, module: wasmtime.Module) -> None:
    payload = bytes(module.serialize())
    blob = _MAGIC + _checksum(path, payload) + payload
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        warnings.warn(f"could not write vudo cache entry {path}: {exc}", CacheWarning, stacklevel=4)


def compile_module(
    wasm: bytes, settings: EngineSettings, *, cache: CacheOption = True, source: str = "<bytes>"
) -> wasmtime.Module:
    """The compiled module for ``wasm``: from memory, from the disk cache, or compiled now."""
    digest = wasm_digest(wasm)
    key = (settings, digest)
    module = _modules.get(key)
    if module is not None:
        return module
    interface = read_interface(wasm)
    if interface is not None and (unsupported := interface.unsupported()):
        raise SpiritLoadError(
            f"{source} cannot be hosted: the signature of {', '.join(unsupported)} uses value "
            "types that cannot cross the host boundary (only i32, i64, f32, f64, funcref and "
            "externref can). Keep SIMD (v128) values and GC, typed-function and exception "
            "references inside the module."
        )
    engine = get_engine(settings)
    directory = resolve_cache_dir(cache)
    path = None
    if directory is not None and (private := _private_dir(directory)) is not None:
        path = entry_path(private, digest, settings)
        module = _read_entry(path, engine)
    exposed, state = expose_state(wasm)
    if module is None:
        try:
            module = wasmtime.Module(engine, exposed)
        except wasmtime.WasmtimeError as exc:
            raise SpiritLoadError(
                f"{source} is not a valid WebAssembly module: {_compile_reason(exc)}. "
                "Rebuild it with a wasm toolchain (or check that the file is complete)."
            ) from exc
        if interface is not None and path is not None:
            _write_entry(path, module)
    if interface is None:
        # Valid for the engine, yet unreadable here: describing its imports and exports
        # through the C API could abort the process, so it is not hosted.
        raise SpiritLoadError(
            f"{source} uses a WebAssembly encoding this runtime cannot read (in its type, "
            "import or export section), so its imports and exports cannot be checked safely; "
            "it cannot be hosted. Build it without experimental wasm proposals."
        )
    with _modules_lock:
        module = _modules.setdefault(key, module)
        _interfaces[module] = interface
        _states[module] = state
        return module


def is_compiled(wasm: bytes, settings: EngineSettings) -> bool:
    """Whether ``wasm`` is compiled for ``settings`` in this process already, with no start
    function (instantiating it then runs no guest code: it takes microseconds)."""
    module = _modules.get((settings, wasm_digest(wasm)))
    interface = _interfaces.get(module) if module is not None else None
    return interface is not None and not interface.has_start


def interface_of(module: wasmtime.Module) -> Interface | None:
    """The interface read from the binary ``module`` was compiled from, when known."""
    return _interfaces.get(module)


def state_of(module: wasmtime.Module) -> StateExports | None:
    """What of ``module``'s state is exported for resets (None: not compiled here)."""
    return _states.get(module)


def _compile_reason(exc: wasmtime.WasmtimeError) -> str:
    """wasmtime's headline plus its root cause ("failed to parse ...: unexpected end-of-file")."""
    headline, root = root_cause(str(exc))
    if not headline:
        return "invalid module"
    return headline if root == headline else f"{headline}: {root}"


_generation = 0


def generation() -> int:
    """Counts :func:`clear_memory_cache` calls: what was derived from the in-process cache
    before one (a Spirit's load recipe) is stale after it."""
    return _generation


def clear_memory_cache() -> None:
    """Forget the in-process cache (the disk cache is untouched)."""
    global _generation
    _generation += 1
    with _modules_lock:
        _modules.clear()
        _interfaces.clear()
        _states.clear()
