"""The ``state`` Loa: key-value state of a Séance and of its Spirits, in a pluggable backend.

Values are ``bytes`` under ``str`` keys, grouped in *namespaces*. A Séance owns one
namespace, shared by its Spirits (``vudo_state_get``/``vudo_state_set``, and
``seance.state`` from Python); each Spirit also has one of its own, ``<namespace>/<name>``
(``vudo_state_get_own``/``vudo_state_set_own``, and ``seance.state.of(name)``).

Where the data lives is a :class:`StateBackend`:

- :class:`MemoryBackend` (the default): a dict in this process, gone with it. Each
  Séance gets a fresh namespace, so Séances sharing one backend never see each other.
- :class:`SqliteBackend`: a SQLite file (WAL, ``synchronous=FULL``) that keeps the data
  across restarts: a write that returned is in the file, and stays there through a crash
  of the process or (with ``FULL``) of the machine. The caller names the namespace:
  ``Seance(state=SqliteBackend("state.db"), namespace="my-app")``.

Either backend can hold a quota per namespace (``quota_bytes``: UTF-8 bytes of the keys
plus the bytes of the values; ``quota_keys``: how many keys). A write that would go past
it raises :class:`~vudo_runtime.errors.StateQuotaError` on the host and returns
:data:`STATE_QUOTA_EXCEEDED` to a guest; either way nothing is written.
"""

from __future__ import annotations

import abc
import itertools
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar, Literal, NamedTuple

from vudo_runtime.errors import StateQuotaError, VudoError
from vudo_runtime.loa import HostContext, HostFunction, Loa
from vudo_runtime.module import Signature

#: Guest return codes, the same in the four state functions.
STATE_OK = 0
#: get: no such key; get or set: the Spirit is not in a Séance (nothing to share).
STATE_MISSING = -1
#: get: the value is longer than the buffer; nothing was written into it.
STATE_BUFFER_TOO_SMALL = -2
#: set: the write would take the namespace past its quota; nothing was written.
STATE_QUOTA_EXCEEDED = -3

Synchronous = Literal["NORMAL", "FULL", "EXTRA"]


class StateUsage(NamedTuple):
    """What a namespace holds: its number of keys, and ``bytes`` of keys plus values."""

    keys: int
    bytes: int


def _entry_size(key: str, value: bytes) -> int:
    return len(key.encode()) + len(value)


def _check_value(key: object, value: object) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"state keys are str, got {type(key).__name__}: {key!r}")
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"state values are bytes, got {type(value).__name__} for key {key!r}")


def _check_quota_arg(name: str, value: int | None) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"{name} must be a non-negative int or None, got {value!r}")
    return value


def check_quota(
    namespace: str,
    key: str,
    before: StateUsage,
    old_size: int | None,
    new_size: int,
    quota_bytes: int | None,
    quota_keys: int | None,
) -> None:
    """Raise :class:`StateQuotaError` if setting ``key`` (``new_size`` bytes with its key,
    replacing ``old_size``, None for a new key) takes ``namespace`` past a quota.

    A write that does not grow a measure is never refused for it, so a namespace left
    over a quota that was lowered can still be shrunk by overwriting.
    """
    keys = before.keys + (old_size is None)
    size = before.bytes - (old_size or 0) + new_size
    over = []
    if quota_keys is not None and keys > quota_keys and keys > before.keys:
        over.append(f"{keys} keys (quota: {quota_keys})")
    if quota_bytes is not None and size > quota_bytes and size > before.bytes:
        over.append(f"{size} bytes (quota: {quota_bytes})")
    if over:
        raise StateQuotaError(
            f"state namespace {namespace!r} is full: setting {key!r} ({new_size} bytes with "
            f"its key) would make it {' and '.join(over)}; nothing was written. Delete keys "
            "or give the backend a larger quota_bytes= / quota_keys=",
            namespace=namespace,
            key=key,
        )


class StateBackend(abc.ABC):
    """Where state lives: ``bytes`` values under ``str`` keys, in ``str`` namespaces.

    Every method may be called from any thread at once (host functions run on the threads
    that call into wasm). ``set`` is atomic: it stores the value or, raising, changes
    nothing. The backend belongs to whoever made it: a Séance never closes it.
    """

    #: True when the data outlives the process; a Séance must then name its namespace.
    persistent: ClassVar[bool] = False

    @abc.abstractmethod
    def get(self, namespace: str, key: str) -> bytes | None:
        """The value of ``key``, or None."""

    @abc.abstractmethod
    def set(self, namespace: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``; :class:`StateQuotaError` leaves the old value."""

    @abc.abstractmethod
    def delete(self, namespace: str, key: str) -> bool:
        """Remove ``key``; False if it was not there."""

    @abc.abstractmethod
    def keys(self, namespace: str) -> list[str]:
        """The keys of ``namespace``, sorted."""

    @abc.abstractmethod
    def clear(self, namespace: str) -> None:
        """Remove every key of ``namespace`` (the others are untouched)."""

    def usage(self, namespace: str) -> StateUsage:
        """Keys and bytes held by ``namespace`` (what the quotas count)."""
        keys = self.keys(namespace)
        size = 0
        for key in keys:
            value = self.get(namespace, key)
            size += 0 if value is None else _entry_size(key, value)
        return StateUsage(len(keys), size)

    def close(self) -> None:  # noqa: B027 (optional: a backend may hold nothing to close)
        """Release what the backend holds; later use raises."""

    def __enter__(self) -> StateBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryBackend(StateBackend):
    """State in this process's memory (the default): fast, and gone when the process ends."""

    def __init__(self, *, quota_bytes: int | None = None, quota_keys: int | None = None) -> None:
        self.quota_bytes = _check_quota_arg("quota_bytes", quota_bytes)
        self.quota_keys = _check_quota_arg("quota_keys", quota_keys)
        self._data: dict[str, dict[str, bytes]] = {}
        self._bytes: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> bytes | None:
        with self._lock:
            space = self._data.get(namespace)
            return None if space is None else space.get(key)

    def set(self, namespace: str, key: str, value: bytes) -> None:
        value = _check_value(key, value)
        size = _entry_size(key, value)
        with self._lock:
            space = self._data.get(namespace)
            old = None if space is None else space.get(key)
            old_size = None if old is None else _entry_size(key, old)
            used = self._bytes.get(namespace, 0)
            if self.quota_bytes is not None or self.quota_keys is not None:
                before = StateUsage(0 if space is None else len(space), used)
                check_quota(
                    namespace, key, before, old_size, size, self.quota_bytes, self.quota_keys
                )
            if space is None:
                space = self._data[namespace] = {}
            space[key] = value
            self._bytes[namespace] = used - (old_size or 0) + size

    def delete(self, namespace: str, key: str) -> bool:
        with self._lock:
            space = self._data.get(namespace)
            old = None if space is None else space.pop(key, None)
            if space is None or old is None:
                return False
            self._bytes[namespace] -= _entry_size(key, old)
            if not space:
                del self._data[namespace], self._bytes[namespace]
            return True

    def keys(self, namespace: str) -> list[str]:
        with self._lock:
            return sorted(self._data.get(namespace, ()))

    def clear(self, namespace: str) -> None:
        with self._lock:
            self._data.pop(namespace, None)
            self._bytes.pop(namespace, None)

    def usage(self, namespace: str) -> StateUsage:
        with self._lock:
            return StateUsage(len(self._data.get(namespace, ())), self._bytes.get(namespace, 0))

    def __repr__(self) -> str:
        return f"MemoryBackend({len(self._data)} namespaces)"


# ---- SQLite ------------------------------------------------------------------------------

#: Bumped when the tables change; a file written by a newer schema is refused.
SCHEMA_VERSION = 1

# `state_usage` is kept by triggers in the transaction of each write, so a quota check
# reads one row instead of summing a namespace, and no writer can let it drift.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS state (namespace TEXT NOT NULL, key TEXT NOT NULL, "
    "value BLOB NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS state_usage (namespace TEXT PRIMARY KEY, "
    "keys INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TRIGGER IF NOT EXISTS state_insert AFTER INSERT ON state BEGIN
      INSERT INTO state_usage (namespace, keys, bytes)
      VALUES (new.namespace, 1, length(CAST(new.key AS BLOB)) + length(new.value))
      ON CONFLICT (namespace) DO UPDATE SET keys = keys + 1, bytes = bytes + excluded.bytes;
    END""",
    """CREATE TRIGGER IF NOT EXISTS state_update AFTER UPDATE OF value ON state BEGIN
      UPDATE state_usage SET bytes = bytes + length(new.value) - length(old.value)
      WHERE namespace = new.namespace;
    END""",
    """CREATE TRIGGER IF NOT EXISTS state_rename BEFORE UPDATE OF namespace, key ON state
    BEGIN SELECT RAISE(ABORT, 'state keys are never renamed: delete and insert'); END""",
    """CREATE TRIGGER IF NOT EXISTS state_delete AFTER DELETE ON state BEGIN
      UPDATE state_usage
      SET keys = keys - 1, bytes = bytes - length(CAST(old.key AS BLOB)) - length(old.value)
      WHERE namespace = old.namespace;
      DELETE FROM state_usage WHERE namespace = old.namespace AND keys <= 0;
    END""",
)
_UPSERT = (
    "INSERT INTO state (namespace, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value"
)
_BEFORE = (
    "SELECT (SELECT keys FROM state_usage WHERE namespace = ?1), "
    "(SELECT bytes FROM state_usage WHERE namespace = ?1), "
    "(SELECT length(CAST(key AS BLOB)) + length(value) FROM state "
    "WHERE namespace = ?1 AND key = ?2)"
)
_GET = "SELECT value FROM state WHERE namespace = ? AND key = ?"


class _Reader:
    """A thread's read connection, held by that thread (weakly by its backend)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class SqliteBackend(StateBackend):
    """State in a SQLite file: it survives process restarts and crashes.

    ``PRAGMA journal_mode=WAL``, and ``synchronous="FULL"`` by default: each write is one
    transaction, fsynced before ``set`` returns, so a write that returned survives a crash
    of the process and a power loss. ``"NORMAL"`` skips that fsync (the write survives a
    crash of the process, and the file stays consistent, but the last writes before a
    power loss may be lost) for about ten times fewer microseconds per write
    (``python -m benchmarks.state``). Several processes may open the same file.

    Writes go through one connection under a lock (SQLite serialises writers anyway, and
    the lock spares threads SQLite's sleeping busy-wait); each thread reads through its
    own connection, so reads never wait behind another thread's fsync.
    ``timeout`` is how long a write waits for another process holding the file.
    """

    persistent: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        quota_bytes: int | None = None,
        quota_keys: int | None = None,
        synchronous: Synchronous = "FULL",
        timeout: float = 5.0,
    ) -> None:
        self.path = os.fspath(path)
        if self.path in ("", ":memory:"):
            raise ValueError(
                f"SqliteBackend needs a file path, got {self.path!r} (use MemoryBackend "
                "for state that need not outlive the process)"
            )
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.quota_bytes = _check_quota_arg("quota_bytes", quota_bytes)
        self.quota_keys = _check_quota_arg("quota_keys", quota_keys)
        self.synchronous: Synchronous = synchronous
        self._timeout = timeout
        self._lock = threading.Lock()
        self._closed = False
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._writer = self._connect()
        try:
            mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            #: "wal", unless the file system cannot share memory (then "delete").
            self.journal_mode: str = str(mode)
            self._writer.execute(f"PRAGMA synchronous={synchronous}")
            self._create_schema()
        except BaseException as exc:
            self._writer.close()
            if isinstance(exc, sqlite3.Error):
                raise VudoError(f"cannot open the state database {self.path!r}: {exc}") from exc
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise VudoError(f"cannot open the state database {self.path!r}: {exc}") from exc

    def _create_schema(self) -> None:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise VudoError(
                    f"the state database {self.path!r} has schema version {version}, newer "
                    f"than this vudo-runtime's {SCHEMA_VERSION}: upgrade vudo-runtime"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _closed_error(self) -> VudoError:
        return VudoError(f"the state backend {self.path!r} was closed")

    def _read(self) -> sqlite3.Connection:
        if self._closed:
            raise self._closed_error()
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            reader = _Reader(conn)
            with self._lock:
                if self._closed:
                    conn.close()
                    raise self._closed_error()
                self._readers.add(reader)
            self._local.reader = reader
        return reader.conn

    def get(self, namespace: str, key: str) -> bytes | None:
        rows = self._read().execute(_GET, (namespace, key)).fetchall()
        return bytes(rows[0][0]) if rows else None

    def set(self, namespace: str, key: str, value: bytes) -> None:
        value = _check_value(key, value)
        with self._lock:
            if self._closed:
                raise self._closed_error()
            conn = self._writer
            if self.quota_bytes is None and self.quota_keys is None:
                conn.execute(_UPSERT, (namespace, key, value))  # one statement: one transaction
                return
            # BEGIN IMMEDIATE takes the write lock first: no other process can write
            # between the quota check and the write.
            conn.execute("BEGIN IMMEDIATE")
            try:
                keys, size, old_size = conn.execute(_BEFORE, (namespace, key)).fetchone()
                before = StateUsage(keys or 0, size or 0)
                new_size = _entry_size(key, value)
                check_quota(
                    namespace, key, before, old_size, new_size, self.quota_bytes, self.quota_keys
                )
                conn.execute(_UPSERT, (namespace, key, value))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _write(self, sql: str, args: tuple[str, ...]) -> int:
        with self._lock:
            if self._closed:
                raise self._closed_error()
            return self._writer.execute(sql, args).rowcount

    def delete(self, namespace: str, key: str) -> bool:
        sql = "DELETE FROM state WHERE namespace = ? AND key = ?"
        return self._write(sql, (namespace, key)) > 0

    def keys(self, namespace: str) -> list[str]:
        sql = "SELECT key FROM state WHERE namespace = ? ORDER BY key"
        return [row[0] for row in self._read().execute(sql, (namespace,)).fetchall()]

    def clear(self, namespace: str) -> None:
        self._write("DELETE FROM state WHERE namespace = ?", (namespace,))

    def usage(self, namespace: str) -> StateUsage:
        sql = "SELECT keys, bytes FROM state_usage WHERE namespace = ?"
        rows = self._read().execute(sql, (namespace,)).fetchall()
        return StateUsage(rows[0][0], rows[0][1]) if rows else StateUsage(0, 0)

    def namespaces(self) -> list[str]:
        """Every namespace holding a key (to find what a Séance no longer uses)."""
        sql = "SELECT namespace FROM state_usage ORDER BY namespace"
        return [row[0] for row in self._read().execute(sql).fetchall()]

    def close(self) -> None:
        """Close every connection; call it once no thread uses the backend any more."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            readers = list(self._readers)
            self._readers.clear()
        for reader in readers:
            reader.conn.close()
        self._writer.close()

    def __repr__(self) -> str:
        closed = ", closed" if self._closed else ""
        return f"SqliteBackend({self.path!r}, synchronous={self.synchronous!r}{closed})"


# ---- the mapping a Séance shows ----------------------------------------------------------

_fresh = itertools.count(1)


class SharedState(MutableMapping[str, bytes]):
    """One namespace of a backend as a thread-safe ``str -> bytes`` mapping.

    ``seance.state`` is the Séance's shared namespace; ``seance.state.of(name)`` is
    Spirit ``name``'s own. With no backend, a fresh :class:`MemoryBackend`; with no
    namespace, a fresh one (a persistent backend needs one named, or its data could never
    be found again). Values may be set as ``str`` (stored as UTF-8); they read as bytes.
    """

    def __init__(self, backend: StateBackend | None = None, namespace: str | None = None) -> None:
        if backend is None:
            backend = MemoryBackend()
        elif not isinstance(backend, StateBackend):
            raise TypeError(f"state= takes a StateBackend, got {type(backend).__name__}")
        if namespace is None:
            if backend.persistent:
                raise ValueError(
                    f"{backend!r} keeps state across restarts: name its namespace, e.g. "
                    "Seance(state=SqliteBackend('state.db'), namespace='my-app')"
                )
            namespace = f"seance-{os.getpid()}-{next(_fresh)}"
        elif not isinstance(namespace, str) or not namespace:
            raise ValueError(f"a state namespace is a non-empty str, got {namespace!r}")
        self._backend = backend
        self._namespace = namespace

    @property
    def backend(self) -> StateBackend:
        return self._backend

    @property
    def namespace(self) -> str:
        return self._namespace

    def of(self, name: str) -> SharedState:
        """The namespace of Spirit ``name`` (``<namespace>/<name>``), same backend."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a Spirit name is a non-empty str, got {name!r}")
        return SharedState(self._backend, f"{self._namespace}/{name}")

    def usage(self) -> StateUsage:
        return self._backend.usage(self._namespace)

    def __getitem__(self, key: str) -> bytes:
        value = self._backend.get(self._namespace, key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._backend.get(self._namespace, key)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._backend.get(self._namespace, key) is not None

    def __setitem__(self, key: str, value: bytes | bytearray | str) -> None:
        data = value.encode() if isinstance(value, str) else value
        self._backend.set(self._namespace, key, _check_value(key, data))

    def __delitem__(self, key: str) -> None:
        if not self._backend.delete(self._namespace, key):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._backend.keys(self._namespace))

    def __len__(self) -> int:
        return self._backend.usage(self._namespace).keys

    def clear(self) -> None:
        self._backend.clear(self._namespace)

    def __repr__(self) -> str:
        return f"SharedState({self._backend!r}, namespace={self._namespace!r})"


# ---- the Loa -----------------------------------------------------------------------------


_Which = Callable[[], MutableMapping[str, bytes] | None]
_Guest = Callable[[int, int, int, int], int]


def _getter(ctx: HostContext, which: _Which) -> _Guest:
    def get(key_ptr: int, key_len: int, buf: int, buf_max: int) -> int:
        """(key_ptr, key_len, buf_ptr, buf_max) -> i32: read a value into a guest buffer.

        Returns the value's length; -1 (STATE_MISSING) no such key, or not in a Séance;
        -2 (STATE_BUFFER_TOO_SMALL) the value is longer than ``buf_max`` (nothing written).
        The key is UTF-8. A backend failure (disk I/O, a closed backend) traps the call.
        """
        store = which()
        key = ctx.read_str(key_ptr, key_len)
        value = store.get(key) if store is not None else None
        if value is None:
            return STATE_MISSING
        if len(value) > (buf_max & 0xFFFFFFFF):
            return STATE_BUFFER_TOO_SMALL
        ctx.memory.write_bytes(buf & 0xFFFFFFFF, value)
        return len(value)

    return get


def _setter(ctx: HostContext, which: _Which) -> _Guest:
    def set_(key_ptr: int, key_len: int, val_ptr: int, val_len: int) -> int:
        """(key_ptr, key_len, val_ptr, val_len) -> i32: store a value.

        Returns 0 (STATE_OK) stored (with a SqliteBackend: in the file, fsynced, by the
        time it returns); -1 (STATE_MISSING) not in a Séance; -3 (STATE_QUOTA_EXCEEDED)
        the namespace's quota would be exceeded (nothing written: the old value stays).
        A backend failure (disk I/O, a closed backend) traps the call.
        """
        store = which()
        if store is None:
            return STATE_MISSING
        key, value = ctx.read_str(key_ptr, key_len), ctx.read_bytes(val_ptr, val_len)
        try:
            store[key] = value
        except StateQuotaError:
            return STATE_QUOTA_EXCEEDED
        return STATE_OK

    return set_


def provides(ctx: HostContext) -> Mapping[str, Any]:
    """``vudo_state_get``/``_set`` use the Séance's shared namespace (``seance.state``);
    ``vudo_state_get_own``/``_set_own`` the calling Spirit's (``seance.state.of(name)``).
    """
    last: list[tuple[object, SharedState]] = []  # (shared, own) of the last own call

    def shared() -> MutableMapping[str, bytes] | None:
        seance = ctx.seance
        return getattr(seance, "state", None) if seance is not None else None

    def own() -> MutableMapping[str, bytes] | None:
        store = shared()
        if not isinstance(store, SharedState):
            return None
        if not last or last[0][0] is not store:
            last[:] = [(store, store.of(ctx.spirit_name))]
        return last[0][1]

    sig = Signature(("i32",) * 4, ("i32",))
    return {
        "vudo_state_get": HostFunction(_getter(ctx, shared), signature=sig),
        "vudo_state_set": HostFunction(_setter(ctx, shared), signature=sig),
        "vudo_state_get_own": HostFunction(_getter(ctx, own), signature=sig),
        "vudo_state_set_own": HostFunction(_setter(ctx, own), signature=sig),
    }


STATE = Loa(
    name="state",
    version="0.2.0",
    capabilities=("vudo_state_get", "vudo_state_set", "vudo_state_get_own", "vudo_state_set_own"),
    provides=provides,
)
