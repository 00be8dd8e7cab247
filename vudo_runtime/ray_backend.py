"""Ray backend: a Séance whose Spirits live on Ray actors (``pip install 'vudo-runtime[ray]'``).

Importing this module never imports Ray; using :class:`RayBackend` without Ray installed
raises :class:`~vudo_runtime.errors.VudoError` saying how to install it.

```python
backend = RayBackend(actors=2)              # ray.init() if needed, then a pool of 2 actors
async with RaySeance(backend) as s:
    await s.summon("calc", "spirits/calculator.wasm")          # bytes shipped, loaded there
    await s.invoke("calc", "add", 40, 2)                        # one actor call (~1.5 ms)
    await s.invoke_many("calc", "add", [(i, 2) for i in range(10_000)])  # one call for all
```

**Placement.** A :class:`RayBackend` holds ``actors`` host actors (``_Host``, each a Ray
asyncio actor reserving ``min(1, cluster CPUs / actors)`` CPUs, so two actors on two
cores run at once) and one hub actor (``_Hub``, 0 CPUs: the Séance's shared state and
its host-side mailboxes). Every :class:`RaySeance` opens a session on each of them: on a
host actor the session is a local :class:`~vudo_runtime.Seance` holding the Spirits
placed there. ``summon`` reads the source to wasm bytes on the driver and ships the bytes
and the picklable options; the Spirit is loaded on the chosen actor: ``actor=`` if
given, the actor of its ``links=`` providers (they must share one Store), else the
least loaded (fewest Spirits of this Séance; ties rotate). A Ghost goes whole to one
actor.

**Calls.** ``invoke`` is one actor call that runs ``Seance.invoke`` there (awaiting the
ObjectRef: the driver's loop is free meanwhile). ``invoke_many`` is the batching: one
actor call that runs every call of the batch back to back with ``call_sync`` on one of
the actor's worker threads; the cost of crossing is paid once per batch instead of once
per call. In an actor every guest call runs on a worker thread, whatever ``mode=`` says
(a thread hop is ~30 µs, nothing next to an actor call): a guest's send to another
actor, or its state call, blocks its thread for a round trip, and a blocking
``ray.get`` on an asyncio actor's event loop can stall Ray's dispatch of that actor's
other tasks, even those of other concurrency groups (two actors sending to each other
from their loops stalled until the get timed out in about 1 run in 4 here; see
ray-project/ray#20475, and Ray's docs: no blocking ``ray.get`` in async actors).

**Messages.** A Spirit's queues live in its actor's bus. Each session's bus there is a
``_RoutingBus``: a ``vudo_send`` to a Spirit on the same actor is the local bus's (µs);
to a Spirit on another actor it is one blocking actor call (~1-2 ms) to the recipient
actor's ``deliver``, which queues it there and returns whether it was accepted, so
``vudo_send`` still answers 1 or 0 truthfully. Every actor has a directory (Spirit name
-> actor) that the driver updates, and waits for, on each summon and release. Names
no directory knows go to the hub, which holds the mailboxes of host-side listeners
(``await s.receive("host")``): a send to a name nobody listens on returns 0 after one
round trip to the hub. ``deliver`` and the other bus methods run in a separate Ray
concurrency group (its own thread and event loop), so a delivery is never stuck behind
a guest call that blocks its actor's main loop, and two actors sending to each other at
once cannot deadlock. Request ids are unique across the session (each bus hands out ids
``≡ its index + 1`` modulo the number of buses), so ``vudo_reply`` finds the bus that
holds its request. ``vudo_broadcast`` costs one call per other actor.

**State.** ``s.state`` (and a guest's ``vudo_state_*``) is the session's namespace in the
hub actor: a :class:`~vudo_runtime.loas.state.MemoryBackend` there by default, or what
``RaySeance(state=factory)`` builds there (a ``StateBackend`` cannot cross processes; a
zero-argument callable making one can, e.g. ``functools.partial(SqliteBackend, path)``).
Every read or write, from the driver or a guest, is one actor call (~1-2 ms).

**Errors.** What an actor raises comes back as the runtime's own exception, of the same
class with the same message and attributes (``SpiritTrap.spirit``, ``.function``,
``.code``...) and its ``__cause__``, with a note giving the actor and its traceback
there: the actors return errors as a ``_Failure`` (rebuilt on the driver without calling
the class's ``__init__``, whose signature may differ from its ``args``), and any
``RayTaskError`` is unwrapped to its cause. A dead actor is a ``SeanceError``.

**Traps in the driver.** ``ray.init`` replaces wasmtime's SIGILL/SIGSEGV handlers in
the driver with Ray's crash reporter, after which a wasm trap in a *local* Spirit kills
the process. This module remembers wasmtime's handlers when imported and
:func:`restore_trap_handlers` puts them back; RayBackend calls it after its own
``ray.init`` and ``ray.shutdown``, and whoever calls those themselves should too.

**Blocking.** The methods that are synchronous on a local Séance (``send``, ``pending``,
``reply``, ``stats``, the ``state`` mapping) are synchronous here too and block the
calling thread for one actor round trip; ``send_async``, ``pending_async`` and
``stats_async`` await instead.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import ctypes
import functools
import importlib
import itertools
import os
import pickle
import signal
import traceback
import uuid
import warnings
from collections.abc import (
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from time import perf_counter
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar

import attrs

from vudo_runtime.engine import get_engine
from vudo_runtime.errors import SeanceError, SpiritTimeout, SpiritTrap, VudoError
from vudo_runtime.loas.messaging import DEFAULT_QUEUE_LIMIT, Message, MessageBus
from vudo_runtime.loas.state import MemoryBackend, StateBackend, StateUsage
from vudo_runtime.metrics import BUCKETS, Recorder, SpiritStats
from vudo_runtime.module import Source, read_source
from vudo_runtime.options import CALL_MODES, CallMode, SpiritOptions
from vudo_runtime.threads import worker_pool

if TYPE_CHECKING:  # imported where used: vudo_runtime.seance may come to import this module
    from vudo_runtime.cache import CacheOption
    from vudo_runtime.loas.wasi import WasiOptions
    from vudo_runtime.manifest import HostPolicy
    from vudo_runtime.registry import LoaGrant, LoaRegistry
    from vudo_runtime.seance import Ghost, Seance
    from vudo_runtime.signing import TrustPolicy

__all__ = ["RayBackend", "RaySeance", "RayState", "RemoteSpirit", "restore_trap_handlers"]

Restart = Literal["never", "on-trap"]

#: The Ray concurrency group (a thread and event loop of its own in each actor) of the
#: bus methods, which never block, so deliveries go on while a guest call blocks the
#: actor's main loop.
BUS_GROUP = "bus"
#: How long a blocking call from one actor to another (a guest's send to a Spirit
#: elsewhere, a state read or write) may take before it fails (seconds).
CROSS_ACTOR_TIMEOUT = 60.0
#: How long RayBackend waits for its actors to start (seconds).
START_TIMEOUT = 120.0

_INSTALL = "pip install 'vudo-runtime[ray]'"
_ray_module: Any = None


def _ray() -> Any:
    """The ``ray`` module, imported on first use; a VudoError saying how to install it."""
    global _ray_module
    if _ray_module is None:
        try:
            _ray_module = importlib.import_module("ray")
        except ImportError as exc:
            raise VudoError(
                f"the Ray backend needs Ray, which is not installed here: {_INSTALL}"
            ) from exc
    return _ray_module


# ---- wasm trap handlers -------------------------------------------------------------------
#
# wasmtime turns guest traps (``unreachable``, an out-of-bounds access...) into SIGILL and
# SIGSEGV and catches them with process-wide handlers, installed when the first Engine is
# made. ``ray.init`` installs Ray's crash reporter (abseil's failure signal handler) for
# the same signals over them, so after it any wasm trap in the driver kills the process
# ("*** SIGILL received ***") instead of raising SpiritTrap. The actors are not affected
# (Ray's handler is there before wasmtime's). So this module remembers wasmtime's
# handlers when it is imported, and puts them back over Ray's after ``ray.init``.

_TRAP_SIGNALS = ("SIGSEGV", "SIGILL", "SIGBUS", "SIGFPE")
_SIGACTION_SIZE = 512  # more than any platform's struct sigaction


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


@functools.cache
def _libc() -> Any:
    if os.name != "posix":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:  # pragma: no cover - a platform without dlopen(NULL)
        return None


def _actions() -> dict[int, tuple[bytes, int, str]]:
    """Each trap signal's current sigaction (raw), its handler, and the library the
    handler is in ("" when none: SIG_DFL, SIG_IGN or unknown)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "sigaction"):
        return {}
    found: dict[int, tuple[bytes, int, str]] = {}
    for name in _TRAP_SIGNALS:
        number = getattr(signal, name, None)
        if number is None:
            continue
        buf = ctypes.create_string_buffer(_SIGACTION_SIZE)
        if libc.sigaction(int(number), None, buf) != 0:
            continue
        handler = ctypes.c_void_p.from_buffer(buf).value or 0  # the first field everywhere
        where = ""
        if handler > 1 and hasattr(libc, "dladdr"):  # not SIG_DFL (0) or SIG_IGN (1)
            info = _DlInfo()
            if libc.dladdr(ctypes.c_void_p(handler), ctypes.byref(info)) and info.dli_fname:
                where = os.path.basename(info.dli_fname.decode(errors="replace"))
        found[int(number)] = (buf.raw, handler, where)
    return found


def _saved_actions() -> dict[int, tuple[bytes, int, str]]:
    """The trap signals' actions once wasmtime's handlers are surely installed (by making
    the default Engine): what :func:`restore_trap_handlers` puts back."""
    with contextlib.suppress(Exception):
        get_engine()
    return _actions()


_SAVED_ACTIONS = _saved_actions()


def restore_trap_handlers() -> bool:
    """Put back wasmtime's trap handlers where ``ray.init`` (Ray's crash reporter) or
    ``ray.shutdown`` (which resets them) replaced them; True when wasm traps in this
    process are caught again.

    :class:`RayBackend` calls it after its own ``ray.init`` and ``ray.shutdown``; call it
    after yours when local Spirits run in the same process. It needs this module
    imported before that ``ray.init``; else set ``RAY_DISABLE_FAILURE_SIGNAL_HANDLER=1``
    in the environment before ``import ray``.
    """
    libc = _libc()
    for sig, (raw, handler, where) in _actions().items():
        saved = _SAVED_ACTIONS.get(sig)
        if libc is None or saved is None or raw == saved[0] or "_raylet" in saved[2]:
            continue
        if "_raylet" in where or (handler == 0 and saved[1] != 0):  # Ray's, or reset
            buf = ctypes.create_string_buffer(saved[0], _SIGACTION_SIZE)
            libc.sigaction(sig, buf, None)
    now = _actions()
    wasm = [sig for sig, (_, _, where) in _SAVED_ACTIONS.items() if "wasmtime" in where]
    return bool(wasm) and all("wasmtime" in now.get(sig, (b"", 0, ""))[2] for sig in wasm)


# ---- errors that cross --------------------------------------------------------------------


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def _import_class(module: str, qualname: str) -> type[BaseException]:
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise TypeError(f"{module}.{qualname} is not an exception class")
    return found


@attrs.frozen
class _Failure:
    """An exception raised on an actor, in a form that crosses back whatever its class.

    Exceptions whose ``__init__`` takes other arguments than their ``args`` (most of the
    runtime's: ``SpiritTrap(message, spirit=...)``) do not survive ``pickle``; this keeps
    their class, ``args`` and attributes and rebuilds them on the driver.
    """

    module: str
    qualname: str
    args: tuple[Any, ...]
    state: dict[str, Any]
    text: str
    pickled: bytes | None
    cause: _Failure | None
    where: str
    trace: str

    @classmethod
    def of(cls, exc: BaseException, where: str, depth: int = 0) -> _Failure:
        kind = type(exc)
        pickled = None
        with contextlib.suppress(Exception):  # a plain exception pickles as itself
            data = pickle.dumps(exc)
            clone = pickle.loads(data)
            if type(clone) is kind and str(clone) == str(exc):
                pickled = data
        args = exc.args if _picklable(exc.args) else tuple(str(a) for a in exc.args)
        state = {k: v for k, v in vars(exc).items() if _picklable(v)}
        cause = exc.__cause__
        packed = cls.of(cause, where, depth + 1) if cause is not None and depth < 4 else None
        lines = traceback.format_exception(kind, exc, exc.__traceback__, limit=-8, chain=False)
        return cls(
            kind.__module__, kind.__qualname__, args, state, str(exc), pickled, packed, where,
            "".join(lines).rstrip(),
        )  # fmt: skip

    def rebuild(self) -> BaseException:
        exc: BaseException | None = None
        if self.pickled is not None:
            with contextlib.suppress(Exception):
                exc = pickle.loads(self.pickled)
        if exc is None:
            try:
                kind = _import_class(self.module, self.qualname)
                exc = kind.__new__(kind, *self.args)  # not __init__: it may take other args
                exc.args = self.args
                exc.__dict__.update(self.state)
            except Exception:
                exc = VudoError(f"{self.module}.{self.qualname}: {self.text}")
        if self.cause is not None:
            exc.__cause__ = self.cause.rebuild()
        exc.add_note(f"(raised on {self.where}; its traceback there:\n{self.trace})")
        return exc


def _from_ray(err: BaseException, what: str) -> BaseException:
    """A Ray exception as the runtime's: a task error's cause, a dead actor a SeanceError."""
    exceptions = _ray().exceptions
    if isinstance(err, exceptions.RayTaskError):
        cause = getattr(err, "cause", None)
        if isinstance(cause, BaseException):
            return cause
        return VudoError(f"{what} failed on a Ray actor: {err}")
    if isinstance(err, exceptions.RayActorError):
        return SeanceError(
            f"the Ray actor holding {what} is gone ({type(err).__name__}: {err}); the "
            "Spirits it held are lost: start a new RaySeance (or RayBackend) and summon them"
        )
    if isinstance(err, exceptions.GetTimeoutError):
        return VudoError(f"{what}: no answer from its Ray actor in time ({err})")
    return err


def _get(ref: Any, what: str, timeout: float | None = CROSS_ACTOR_TIMEOUT) -> Any:
    """``ray.get`` of one actor call, its errors as the runtime's (blocks this thread)."""
    try:
        value = _ray().get(ref, timeout=timeout)
    except Exception as err:
        error = _from_ray(err, what)
    else:
        if type(value) is not _Failure:
            return value
        error = value.rebuild()
    raise error


def _get_all(
    refs: Sequence[Any], what: str, timeout: float | None = CROSS_ACTOR_TIMEOUT
) -> list[Any]:
    try:
        values: list[Any] = _ray().get(list(refs), timeout=timeout)
    except Exception as err:
        error = _from_ray(err, what)
    else:
        for value in values:
            if type(value) is _Failure:
                raise value.rebuild()
        return values
    raise error


async def _wait(ref: Any, what: str) -> Any:
    """Await one actor call; cancelling the wait cancels the call (and stops its guest)."""
    try:
        value = await ref
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            _ray().cancel(ref)
        raise
    except Exception as err:
        error = _from_ray(err, what)
    else:
        if type(value) is not _Failure:
            return value
        error = value.rebuild()
    raise error


P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound="_Endpoint")


def _guarded(
    method: Callable[Concatenate[E, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[E, P], Coroutine[Any, Any, R | _Failure]]:
    """An actor method whose exceptions are returned as a _Failure (CancelledError and
    other BaseExceptions propagate, so ``ray.cancel`` still cancels it)."""

    @functools.wraps(method)
    async def guarded(self: E, /, *args: P.args, **kwargs: P.kwargs) -> R | _Failure:
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            return _Failure.of(exc, self.where)

    return guarded


# ---- the bus of a session on one actor ------------------------------------------------------


class _RoutingBus(MessageBus):
    """A session's bus on one actor: local queues for its members, sends to others routed
    to the actor that holds them (see the module docstring)."""

    def __init__(self, limit: int, *, sid: str, index: int, hosts: Sequence[Any], hub: Any) -> None:
        super().__init__(limit)
        self.sid = sid
        self.index = index
        self.hub_index = len(hosts)
        self.stride = len(hosts) + 1
        # Request ids say which bus holds the request: this bus's are index + 1 modulo
        # the number of buses (MessageBus takes its ids from ``_ids``).
        self._ids = itertools.count(index + 1, self.stride)
        self._endpoints: list[Any] = [*hosts, hub]
        self._methods: dict[tuple[int, str], Any] = {}
        self._local: set[str] = set()
        #: Spirit name -> index of the host actor holding it (kept by the driver).
        self.directory: dict[str, int] = {}

    def join(self, name: str) -> None:
        super().join(name)
        self._local.add(name)

    def leave(self, name: str) -> None:
        self._local.discard(name)
        super().leave(name)

    def method(self, where: int, name: str) -> Any:
        key = (where, name)
        method = self._methods.get(key)
        if method is None:
            handle = self._endpoints[where]
            method = self._methods[key] = getattr(handle, name).options(concurrency_group=BUS_GROUP)
        return method

    def _remote(self, where: int, name: str, *args: Any) -> Any:
        ref = self.method(where, name).remote(self.sid, *args)
        return _get(ref, f"a message sent from actor {self.index}")

    def send(
        self,
        sender: str,
        to: str,
        payload: bytes,
        channel: int = 0,
        *,
        request_id: int = 0,
        reply_to: int = 0,
    ) -> bool:
        if to in self._local:
            return super().send(
                sender, to, payload, channel, request_id=request_id, reply_to=reply_to
            )
        where = self.directory.get(to)
        if where is None:
            if self.index == self.hub_index:  # the hub holds every listener: nobody
                return False
            where = self.hub_index  # the host-side listeners' mailboxes are there
        if where == self.index:  # it was here and left
            return False
        data = bytes(payload)
        return bool(self._remote(where, "deliver", sender, to, data, channel, request_id, reply_to))

    def deliver(
        self, sender: str, to: str, payload: bytes, channel: int, request_id: int, reply_to: int
    ) -> bool:
        """Queue a message routed here (never routed on)."""
        return MessageBus.send(
            self, sender, to, payload, channel, request_id=request_id, reply_to=reply_to
        )

    def local_broadcast(self, sender: str, payload: bytes, channel: int = 0) -> int:
        return MessageBus.broadcast(self, sender, payload, channel)

    def broadcast(self, sender: str, payload: bytes, channel: int = 0) -> int:
        count = self.local_broadcast(sender, payload, channel)
        data = bytes(payload)
        refs = [
            self.method(where, "broadcast_local").remote(self.sid, sender, data, channel)
            for where in range(self.stride)
            if where != self.index
        ]
        counts: list[int] = _get_all(refs, f"a broadcast from actor {self.index}")
        return count + sum(counts)

    def owner(self, request_id: int) -> int:
        return (request_id - 1) % self.stride if request_id > 0 else self.index

    def reply(self, sender: str, request_id: int, payload: bytes) -> bool:
        owner = self.owner(request_id)
        if owner == self.index:
            return super().reply(sender, request_id, payload)
        return bool(self._remote(owner, "reply", sender, request_id, bytes(payload)))


class _HubState(StateBackend):
    """A host actor's view of the session state: every operation is a call to the hub."""

    def __init__(self, hub: Any, sid: str) -> None:
        self._hub = hub
        self._sid = sid

    def _op(self, op: str, namespace: str, *args: Any) -> Any:
        return _get(self._hub.state.remote(self._sid, op, namespace, *args), "the Séance state")

    def get(self, namespace: str, key: str) -> bytes | None:
        value: bytes | None = self._op("get", namespace, key)
        return value

    def set(self, namespace: str, key: str, value: bytes) -> None:
        self._op("set", namespace, key, bytes(value))

    def delete(self, namespace: str, key: str) -> bool:
        return bool(self._op("delete", namespace, key))

    def keys(self, namespace: str) -> list[str]:
        keys: list[str] = self._op("keys", namespace)
        return keys

    def clear(self, namespace: str) -> None:
        self._op("clear", namespace)

    def usage(self, namespace: str) -> StateUsage:
        usage: StateUsage = self._op("usage", namespace)
        return usage


# ---- the actors -------------------------------------------------------------------------------


class _Endpoint:
    """What host actors and the hub share: sessions, and the bus methods (in BUS_GROUP)."""

    role = "actor"

    def __init__(self, index: int) -> None:
        self.index = index
        self.where = f"vudo's Ray {self.role} {index} (pid {os.getpid()})"
        self._buses: dict[str, _RoutingBus] = {}
        # A guest's send to another actor and its state calls block by design (host
        # functions are synchronous): no "blocking ray.get inside async actor" warning.
        os.environ.setdefault("RAY_WARN_BLOCKING_GET_INSIDE_ASYNC", "0")

    def _bus(self, sid: str) -> _RoutingBus:
        try:
            return self._buses[sid]
        except KeyError:
            raise SeanceError(f"this Séance is not open on {self.where}") from None

    async def ping(self) -> int:
        return os.getpid()

    async def deliver(
        self,
        sid: str,
        sender: str,
        to: str,
        payload: bytes,
        channel: int,
        request_id: int,
        reply_to: int,
    ) -> bool:
        bus = self._buses.get(sid)
        return bus is not None and bus.deliver(sender, to, payload, channel, request_id, reply_to)

    async def broadcast_local(self, sid: str, sender: str, payload: bytes, channel: int) -> int:
        bus = self._buses.get(sid)
        return bus.local_broadcast(sender, payload, channel) if bus is not None else 0

    async def reply(self, sid: str, sender: str, request_id: int, payload: bytes) -> bool:
        bus = self._buses.get(sid)
        return (
            bus is not None
            and bus.owner(request_id) == self.index
            and bus.reply(sender, request_id, payload)
        )

    async def pending(self, sid: str, name: str, channel: int) -> int:
        bus = self._buses.get(sid)
        return bus.pending(name, channel) if bus is not None else 0

    async def place(self, sid: str, names: list[str], where: int | None) -> None:
        bus = self._buses.get(sid)
        if bus is None:
            return
        for name in names:
            if where is None:
                bus.directory.pop(name, None)
            else:
                bus.directory[name] = where

    @_guarded
    async def receive(self, sid: str, name: str, channel: int, timeout: float | None) -> Message:
        bus = self._bus(sid)
        bus.join(name)  # on the hub: a listener; on a host actor ``name`` is a member
        return await bus.receive(name, channel, timeout)


@attrs.define
class _Session:
    seance: Seance
    bus: _RoutingBus
    restart: dict[str, str] = attrs.field(factory=dict)
    #: What invoke_many did, per Spirit (stats() adds it to the Séance's own counts).
    batched: dict[str, Recorder] = attrs.field(factory=dict)


def _absorb(total: Recorder, part: Recorder) -> None:
    total.calls += part.calls
    total.traps += part.traps
    total.timeouts += part.timeouts
    total.fuel_used += part.fuel_used
    total.total += part.total
    total.buckets = [a + b for a, b in zip(total.buckets, part.buckets, strict=True)]


def _merged(stats: SpiritStats, part: Recorder) -> SpiritStats:
    return attrs.evolve(
        stats,
        calls=stats.calls + part.calls,
        traps=stats.traps + part.traps,
        timeouts=stats.timeouts + part.timeouts,
        fuel_used=stats.fuel_used + part.fuel_used,
        total_seconds=stats.total_seconds + part.total,
        buckets=tuple(a + b for a, b in zip(stats.buckets, part.buckets, strict=True)),
    )


def _pack(items: list[Any]) -> bytes | list[Any]:
    """A batch's arguments or results as one pickle: Ray's serializer takes ~1 µs per item
    of a list of tuples, pickle ~0.1 µs. What pickle refuses goes as the list itself."""
    try:
        return pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return items


def _unpack(packed: bytes | list[Any]) -> list[Any]:
    if isinstance(packed, bytes):
        items: list[Any] = pickle.loads(packed)  # our own, from this Séance's actors
        return items
    return packed


def _run_batch(
    spirit: Any,
    fn: str,
    calls: Sequence[Any],
    start: int,
    timeout: float | None,
    returns: Any,
    results: list[Any],
    record: Recorder,
) -> tuple[int, Exception | None]:
    """Run ``calls[start:]`` on this thread; (index of the first that raised, its error),
    or (len(calls), None). A tuple or list is the arguments of one call, anything else
    its one argument.

    The calls are timed together (a clock read per call would add a third to a small
    one): ``record`` counts each, and puts them in the latency bucket of their mean.
    """
    call = spirit.call_sync
    fuel = spirit.fuel
    plain = timeout is None and returns is None and fuel is None
    append = results.append
    began = perf_counter()
    k = start
    error: Exception | None = None
    try:
        for k in range(start, len(calls)):
            args = calls[k]
            if type(args) is not tuple:
                args = tuple(args) if isinstance(args, list) else (args,)
            if plain:
                append(call(fn, *args))
            else:
                append(call(fn, *args, timeout=timeout, returns=returns))
                record.count_fuel(spirit, fuel)
        k = len(calls)
    except Exception as exc:
        error = exc
    elapsed = perf_counter() - began
    trapped = isinstance(error, SpiritTrap)
    if trapped:
        record.count_fuel(spirit, fuel)
    ran = k - start + trapped  # a call refused before it ran (a bad argument) is not counted
    if ran:
        _record_batch(record, ran, elapsed, trapped, isinstance(error, SpiritTimeout))
    return k, error


def _record_batch(
    record: Recorder, calls: int, elapsed: float, trapped: bool, timed_out: bool
) -> None:
    record.calls += calls
    record.total += elapsed
    record.buckets[bisect.bisect_left(BUCKETS, elapsed / calls)] += calls
    record.traps += trapped
    record.timeouts += timed_out


class _Host(_Endpoint):
    """A host actor: per session a local Séance holding the Spirits placed here."""

    role = "host actor"

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self._sessions: dict[str, _Session] = {}

    def _session(self, sid: str) -> _Session:
        try:
            return self._sessions[sid]
        except KeyError:
            raise SeanceError(f"this Séance is not open on {self.where}") from None

    @_guarded
    async def open(
        self,
        sid: str,
        hosts: list[Any],
        hub: Any,
        namespace: str,
        queue_limit: int,
        registry: Callable[[], LoaRegistry] | None,
    ) -> None:
        from vudo_runtime.seance import Seance

        made = registry() if registry is not None else None
        seance = Seance(
            made, queue_limit=queue_limit, state=_HubState(hub, sid), namespace=namespace
        )
        bus = _RoutingBus(queue_limit, sid=sid, index=self.index, hosts=hosts, hub=hub)
        seance.bus = bus
        self._sessions[sid] = _Session(seance, bus)
        self._buses[sid] = bus

    @_guarded
    async def close(self, sid: str) -> None:
        session = self._sessions.pop(sid, None)
        self._buses.pop(sid, None)
        if session is not None:
            await session.seance.dismiss()

    @_guarded
    async def summon(self, sid: str, name: str, source: Any, options: dict[str, Any]) -> list[str]:
        session = self._session(sid)
        seance = session.seance
        before = set(seance.names)
        await seance.summon(name, source, **options)
        added = [n for n in seance.names if n not in before]
        for n in added:
            session.restart[n] = options.get("restart", "never")
        return added

    @_guarded
    async def release(self, sid: str, name: str) -> None:
        session = self._session(sid)
        await session.seance.release(name)
        session.restart.pop(name, None)
        session.batched.pop(name, None)

    @_guarded
    async def restart(self, sid: str, name: str) -> None:
        await self._session(sid).seance.restart(name)

    @_guarded
    async def invoke(
        self,
        sid: str,
        name: str,
        fn: str,
        args: tuple[Any, ...],
        timeout: float | None,
        mode: CallMode | None,
        returns: Any,
    ) -> Any:
        seance = self._session(sid).seance
        # Always on a worker thread (mode is checked on the driver, for parity only): a
        # guest's send to another actor or its state call blocks its thread, and Ray must
        # never find this actor's event loop blocked (module docstring, "Blocking").
        result = await seance.invoke(name, fn, *args, timeout=timeout, mode="thread")
        if returns is not None:
            result = seance[name].read_back(result, returns)
        return result

    @_guarded
    async def invoke_many(
        self,
        sid: str,
        name: str,
        fn: str,
        packed: bytes | list[Any],
        timeout: float | None,
        returns: Any,
        return_exceptions: bool,
    ) -> bytes | list[Any]:
        session = self._session(sid)
        seance = session.seance
        loop = asyncio.get_running_loop()
        calls: list[Any] = _unpack(packed)
        results: list[Any] = []
        start = 0
        while True:
            spirit = seance[name]  # again after a restart
            record = Recorder(reused=False)
            start, error = await loop.run_in_executor(
                worker_pool(), _run_batch, spirit, fn, calls, start, timeout, returns,
                results, record,
            )  # fmt: skip
            _absorb(session.batched.setdefault(name, Recorder(reused=False)), record)
            if error is None:
                return _pack(results)
            if isinstance(error, SpiritTrap):
                seance.failures[name] = error
                if session.restart.get(name) == "on-trap" and name in seance:
                    await seance.restart(name)
            if not return_exceptions:
                raise error
            results.append(_Failure.of(error, self.where))
            start += 1
            if start >= len(calls):
                return _pack(results)

    @_guarded
    async def stats(self, sid: str) -> dict[str, SpiritStats]:
        session = self._session(sid)
        stats = session.seance.stats()
        for name, part in session.batched.items():
            if name in stats:
                stats[name] = _merged(stats[name], part)
        return stats

    @_guarded
    async def interrupt(self, sid: str, name: str) -> bool:  # called in BUS_GROUP
        return self._session(sid).seance.interrupt(name)


@attrs.define
class _HubSession:
    bus: _RoutingBus
    backend: StateBackend
    namespace: str


_STATE_OPS = frozenset({"get", "set", "delete", "keys", "clear", "usage"})


class _Hub(_Endpoint):
    """The hub actor: each session's state backend and its host-side mailboxes."""

    role = "hub actor"

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self._sessions: dict[str, _HubSession] = {}

    @_guarded
    async def open(
        self,
        sid: str,
        hosts: list[Any],
        namespace: str | None,
        queue_limit: int,
        state: Callable[[], StateBackend] | None,
    ) -> str:
        backend = state() if state is not None else MemoryBackend()
        if not isinstance(backend, StateBackend):
            raise TypeError(f"state= must make a StateBackend, it made {type(backend).__name__}")
        if namespace is None:
            if backend.persistent:
                raise ValueError(
                    f"{backend!r} keeps state across restarts: name its namespace, e.g. "
                    "RaySeance(backend, state=partial(SqliteBackend, 'state.db'), "
                    "namespace='my-app')"
                )
            namespace = f"seance-ray-{sid}"
        elif not isinstance(namespace, str) or not namespace:
            raise ValueError(f"a state namespace is a non-empty str, got {namespace!r}")
        bus = _RoutingBus(queue_limit, sid=sid, index=self.index, hosts=hosts, hub=None)
        self._sessions[sid] = _HubSession(bus, backend, namespace)
        self._buses[sid] = bus
        return namespace

    @_guarded
    async def close(self, sid: str) -> None:
        session = self._sessions.pop(sid, None)
        self._buses.pop(sid, None)
        if session is not None and session.backend is not None:
            session.backend.close()

    @_guarded
    async def state(self, sid: str, op: str, namespace: str, *args: Any) -> Any:
        try:
            session = self._sessions[sid]
        except KeyError:
            raise SeanceError("this Séance was dismissed; its state is gone") from None
        if op not in _STATE_OPS:
            raise ValueError(f"unknown state operation {op!r}")
        return getattr(session.backend, op)(namespace, *args)

    @_guarded
    async def listen(self, sid: str, name: str) -> None:
        self._bus(sid).join(name)

    @_guarded
    async def ask(
        self,
        sid: str,
        from_: str,
        to: str,
        payload: bytes,
        channel: int,
        timeout: float | None,
    ) -> bytes:
        bus = self._bus(sid)

        def ask() -> Message:  # on a thread of its own: the send blocks (see _Host.invoke)
            return asyncio.run(bus.ask(from_, to, payload, channel, timeout))

        loop = asyncio.get_running_loop()
        message = await loop.run_in_executor(_requests_pool(), ask)
        return message.payload


_requests: concurrent.futures.ThreadPoolExecutor | None = None


def _requests_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The hub's threads for host requests: each waits for its reply (up to its timeout)."""
    global _requests
    if _requests is None:
        _requests = concurrent.futures.ThreadPoolExecutor(64, "vudo-ray-request")
    return _requests


# ---- the driver -------------------------------------------------------------------------------


class RayBackend:
    """A connection to Ray and a pool of ``actors`` host actors plus one hub actor.

    Calls ``ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
    log_to_driver=False, **init_kwargs)`` when Ray is not initialised yet (``num_cpus=``
    goes in ``init_kwargs``; Ray's default is every core). Each host actor reserves
    ``cpus_per_actor`` CPUs (default ``min(1, cluster CPUs / actors)``: one core each
    when there are enough, so the actors are spread over the cores and run at once).
    Waits until the actors run (at most ``start_timeout`` seconds: with too few free
    CPUs they could never start). ``close()`` kills the actors, and shuts Ray down if
    this backend started it. The actors run ``vudo_runtime`` from their worker's Python
    environment: on a cluster, install vudo-runtime on every node.
    """

    def __init__(
        self,
        *,
        actors: int = 2,
        address: str | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
        cpus_per_actor: float | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if not isinstance(actors, int) or isinstance(actors, bool) or actors < 1:
            raise ValueError(f"actors must be a positive int, got {actors!r}")
        ray = _ray()
        self.started_ray = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "ignore_reinit_error": True,
                "include_dashboard": False,
                "log_to_driver": False,
                **(init_kwargs or {}),
            }
            if address is not None:
                kwargs["address"] = address
            ray.init(**kwargs)
            self.started_ray = True
        if not restore_trap_handlers():
            warnings.warn(
                "Ray's crash reporter holds SIGILL/SIGSEGV in this process and wasmtime's "
                "trap handlers could not be put back: a wasm trap in a local Spirit here "
                "would kill the process. Import vudo_runtime.ray_backend before ray.init, "
                "or set RAY_DISABLE_FAILURE_SIGNAL_HANDLER=1 before importing ray",
                RuntimeWarning,
                stacklevel=2,
            )
        cpus = float(ray.cluster_resources().get("CPU", 0.0)) or float(actors)
        if cpus_per_actor is None:
            cpus_per_actor = min(1.0, cpus / actors)
        self.cpus_per_actor = cpus_per_actor
        host_class = ray.remote(num_cpus=cpus_per_actor, concurrency_groups={BUS_GROUP: 8})(_Host)
        hub_class = ray.remote(num_cpus=0, concurrency_groups={BUS_GROUP: 8})(_Hub)
        #: The host actors' handles, by index (``RaySeance.summon(..., actor=index)``).
        self.hosts: list[Any] = [host_class.remote(i) for i in range(actors)]
        self.hub: Any = hub_class.remote(actors)
        self._closed = False
        try:
            refs = [h.ping.remote() for h in [*self.hosts, self.hub]]
            #: The process ids of the host actors, then the hub's.
            self.pids: list[int] = ray.get(refs, timeout=start_timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise VudoError(
                f"{actors} Ray host actors of {cpus_per_actor:g} CPU each did not start "
                f"within {start_timeout:g}s; the cluster has {cpus:g} CPUs in all (others "
                "may hold them): ask for fewer actors= or cpus_per_actor="
            ) from None
        except Exception as err:
            self.close()
            raise VudoError(
                f"the Ray actors of this RayBackend could not start: {err} (is vudo-runtime "
                "installed in the Python environment of Ray's workers?)"
            ) from err

    @property
    def actors(self) -> int:
        return len(self.hosts)

    @property
    def closed(self) -> bool:
        return self._closed

    def seance(self, **kwargs: Any) -> RaySeance:
        """A new :class:`RaySeance` on this backend."""
        return RaySeance(self, **kwargs)

    def close(self) -> None:
        """Kill the actors (every RaySeance on them ends); shut Ray down if we started it."""
        if self._closed:
            return
        self._closed = True
        ray = _ray()
        for handle in [*self.hosts, self.hub]:
            with contextlib.suppress(Exception):
                ray.kill(handle)
        if self.started_ray:
            ray.shutdown()
            restore_trap_handlers()  # ray.shutdown resets SIGILL and SIGSEGV

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"RayBackend(actors={self.actors}, cpus_per_actor={self.cpus_per_actor:g}{state})"


@attrs.frozen
class RemoteSpirit:
    """What :meth:`RaySeance.summon` returns: a Spirit's name and the actor holding it."""

    name: str
    actor: int
    seance: RaySeance = attrs.field(repr=False, eq=False)

    async def call(
        self,
        fn: str,
        *args: Any,
        timeout: float | None = None,
        mode: CallMode | None = None,
        returns: Any = None,
    ) -> Any:
        return await self.seance.invoke(
            self.name, fn, *args, timeout=timeout, mode=mode, returns=returns
        )

    async def call_many(self, fn: str, calls: Iterable[Any], **kwargs: Any) -> list[Any]:
        return await self.seance.invoke_many(self.name, fn, calls, **kwargs)


class RayState(MutableMapping[str, bytes]):
    """A session's state namespace in the hub actor, as a ``str -> bytes`` mapping.

    Each operation is one blocking actor call. ``of(name)`` is Spirit ``name``'s own
    namespace (``<namespace>/<name>``, what ``vudo_state_*_own`` use).
    """

    def __init__(self, seance: RaySeance, namespace: str) -> None:
        self._seance = seance
        self._namespace = namespace

    @property
    def namespace(self) -> str:
        return self._namespace

    def _op(self, op: str, *args: Any) -> Any:
        hub = self._seance.backend.hub
        ref = hub.state.remote(self._seance.session, op, self._namespace, *args)
        return _get(ref, "the Séance state")

    def of(self, name: str) -> RayState:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a Spirit name is a non-empty str, got {name!r}")
        return RayState(self._seance, f"{self._namespace}/{name}")

    def usage(self) -> StateUsage:
        usage: StateUsage = self._op("usage")
        return usage

    def __getitem__(self, key: str) -> bytes:
        value: bytes | None = self._op("get", key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._op("get", key)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._op("get", key) is not None

    def __setitem__(self, key: str, value: bytes | bytearray | memoryview | str) -> None:
        if not isinstance(key, str):
            raise TypeError(f"state keys are str, got {type(key).__name__}: {key!r}")
        if isinstance(value, str):
            data = value.encode()
        elif isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
        else:
            raise TypeError(f"state values are bytes, got {type(value).__name__} for key {key!r}")
        self._op("set", key, data)

    def __delitem__(self, key: str) -> None:
        if not self._op("delete", key):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        keys: list[str] = self._op("keys")
        return iter(keys)

    def __len__(self) -> int:
        return self.usage().keys

    def clear(self) -> None:
        self._op("clear")

    def __repr__(self) -> str:
        return f"RayState(namespace={self._namespace!r})"


#: SpiritOptions fields that cannot cross to an actor (callables, objects of this process).
_LOCAL_ONLY = ("stdout", "on_effect", "seance", "registry")


def _loa_names(loas: LoaGrant) -> tuple[str, ...] | None:
    if loas is None:
        return None
    if isinstance(loas, str):
        return (loas,)
    from vudo_runtime.registry import LoaRegistry

    hint = (
        "on a Ray actor Loas are granted by name: register your own in the registry that "
        "RaySeance(registry=<a function building a LoaRegistry>) makes there"
    )
    if isinstance(loas, LoaRegistry):
        raise SeanceError(f"loas= as a LoaRegistry cannot cross to a Ray actor; {hint}")
    names = []
    for item in loas:
        if not isinstance(item, str):
            raise SeanceError(f"loas= holds {item!r}, which cannot cross to a Ray actor; {hint}")
        names.append(item)
    return tuple(names)


def _crossing(options: SpiritOptions) -> SpiritOptions:
    """``options`` as they can be shipped to an actor; SeanceError for what cannot."""
    for local in _LOCAL_ONLY:
        value = getattr(options, local)
        if value is not None:
            raise SeanceError(
                f"{local}={value!r} cannot cross to a Ray actor (it is an object of this "
                f"process); leave {local}= out, or summon the Spirit on a local Seance"
            )
    shipped = attrs.evolve(options, name=None, loas=_loa_names(options.loas))
    if not _picklable(shipped):
        for field in attrs.fields(SpiritOptions):
            value = getattr(shipped, field.name)
            if not _picklable(value):
                raise SeanceError(f"{field.name}={value!r} cannot be pickled to a Ray actor")
        raise SeanceError(f"these options cannot be pickled to a Ray actor: {shipped!r}")
    return shipped


def _wasm(source: Source, name: str, trust: TrustPolicy | None) -> bytes:
    """The wasm bytes of ``source``, read (and WAT compiled) here, verified against
    ``trust`` when given: unverified code never reaches an actor."""
    from vudo_runtime.signing import verify
    from vudo_runtime.spirit import is_manifest

    if is_manifest(source):
        raise SeanceError(
            f"{os.fspath(source)} is a spirit.toml manifest, whose files are on this "
            "machine: summon its module on a Ray actor with the options it asks for, or "
            "load it on a local Seance"
        )
    wasm, _, label = read_source(source, name)
    if trust is not None:
        verify(wasm, trust, source=label)
    return wasm


class RaySeance:
    """A Séance whose Spirits run on the actors of a :class:`RayBackend`.

    The async API of :class:`~vudo_runtime.Seance` for what crosses processes: summon,
    invoke, ``invoke_many`` (the batching), release, restart, dismiss, messages (send,
    receive, request, reply, pending), ``state``, ``stats()`` and ``failures``. What
    stays in the actors: the Spirit objects (``summon`` returns a :class:`RemoteSpirit`)
    and their memory (``invoke(..., returns=str)`` reads a returned pointer there).
    ``state=`` is a zero-argument callable making the session's StateBackend in the hub
    actor (default: a MemoryBackend there); ``registry=`` one making the LoaRegistry of
    each host actor's Séance (for Loas of your own, granted by name).
    """

    def __init__(
        self,
        backend: RayBackend | None = None,
        *,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        state: Callable[[], StateBackend] | None = None,
        namespace: str | None = None,
        registry: Callable[[], LoaRegistry] | None = None,
    ) -> None:
        if state is not None and (isinstance(state, StateBackend) or not callable(state)):
            raise TypeError(
                "state= takes a zero-argument callable that makes the StateBackend in the "
                "hub actor (a backend object cannot cross processes), e.g. "
                "functools.partial(SqliteBackend, 'state.db')"
            )
        if registry is not None and not callable(registry):
            raise TypeError("registry= takes a zero-argument callable that makes a LoaRegistry")
        self.backend = backend if backend is not None else RayBackend()
        if self.backend.closed:
            raise SeanceError("this RayBackend was closed; make a new one")
        #: This session's id on the actors.
        self.session = uuid.uuid4().hex
        hosts, hub = self.backend.hosts, self.backend.hub
        ref = hub.open.remote(self.session, hosts, namespace, queue_limit, state)
        ns: str = _get(ref, "the Séance")
        refs = [h.open.remote(self.session, hosts, hub, ns, queue_limit, registry) for h in hosts]
        try:
            _get_all(refs, "the Séance")
        except BaseException:
            for handle in [*hosts, hub]:  # what opened closes again
                handle.close.remote(self.session)
            raise
        #: The shared state namespace, in the hub actor (``state.of(name)``: a Spirit's own).
        self.state = RayState(self, ns)
        #: Spirits whose last call trapped or timed out, with the error.
        self.failures: dict[str, SpiritTrap] = {}
        self._placement: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._methods: dict[tuple[int, str], Any] = {}
        self._next = 0
        self._dismissed = False

    # ---- lifetime --------------------------------------------------------------------------

    async def __aenter__(self) -> RaySeance:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dismiss()

    def _check_open(self) -> None:
        if self._dismissed:
            raise SeanceError("this Séance was dismissed; start a new one")

    def _endpoint(self, where: int) -> Any:
        hosts = self.backend.hosts
        return hosts[where] if where < len(hosts) else self.backend.hub

    def _bus_method(self, where: int, name: str) -> Any:
        key = (where, name)
        method = self._methods.get(key)
        if method is None:
            method = getattr(self._endpoint(where), name).options(concurrency_group=BUS_GROUP)
            self._methods[key] = method
        return method

    def _check_free(self, names: list[str]) -> None:
        for n in names:
            if n in self._placement or n in self._reserved:
                raise SeanceError(f"a Spirit named {n!r} is already summoned; release it first")

    def _actor_of(self, name: str) -> int:
        self._check_open()
        try:
            return self._placement[name]
        except KeyError:
            raise SeanceError(
                f"no Spirit named {name!r} in this Séance; summoned: "
                f"{', '.join(self._placement) or 'none'}"
            ) from None

    def _choose(self, name: str, actor: int | None, links: Mapping[str, str]) -> int:
        count = len(self.backend.hosts)
        if actor is not None and (
            not isinstance(actor, int) or isinstance(actor, bool) or not 0 <= actor < count
        ):
            raise SeanceError(
                f"actor= is the index of a host actor, 0 to {count - 1}; got {actor!r}"
            )
        if links:
            owners = set()
            for module_name, member in links.items():
                if member not in self._placement:
                    raise SeanceError(
                        f"cannot link import module {module_name!r} of {name!r} to {member!r}: "
                        "no such Spirit in this Séance (summoned: "
                        f"{', '.join(self.names) or 'none'})"
                    )
                owners.add(self._placement[member])
            if len(owners) != 1:
                raise SeanceError(
                    f"{name!r} links to Spirits on different Ray actors {sorted(owners)}; linked "
                    "Spirits share one Store: summon its providers with the same actor="
                )
            (owner,) = owners
            if actor is not None and actor != owner:
                raise SeanceError(
                    f"{name!r} links to Spirits on actor {owner}, so it runs there, not on "
                    f"actor {actor}"
                )
            return owner
        if actor is not None:
            return actor
        load = [0] * count
        for where in itertools.chain(self._placement.values(), self._reserved.values()):
            load[where] += 1
        first = self._next
        chosen = min(range(count), key=lambda k: (load[(first + k) % count], k))
        where = (first + chosen) % count
        self._next = (where + 1) % count
        return where

    async def summon(
        self,
        name: str,
        source: Source | Ghost,
        *,
        actor: int | None = None,
        options: SpiritOptions | None = None,
        loas: LoaGrant = None,
        links: Mapping[str, str] | None = None,
        timeout: float | None = None,
        fuel: int | None = None,
        max_memory: int | None = None,
        mode: CallMode = "auto",
        stdout: Any = None,
        on_effect: Callable[..., Any] | None = None,
        restart: Restart = "never",
        cache: CacheOption = True,
        wasi: WasiOptions | None = None,
        compact: bool = False,
        trust: TrustPolicy | None = None,
        policy: HostPolicy | None = None,
    ) -> RemoteSpirit:
        """Load ``source`` as member ``name`` on a host actor (``actor=`` to choose which).

        The source is read (and WAT compiled) here; its wasm bytes and the options are
        shipped. Options that are objects of this process (``stdout=``, ``on_effect=``,
        Loa objects or a registry in ``loas=``) raise SeanceError. A ``cache=`` directory
        is a path on the actor's machine.
        """
        from vudo_runtime.seance import Ghost

        self._check_open()
        if not isinstance(name, str) or not name:
            raise SeanceError(f"a Spirit needs a non-empty name, got {name!r}")
        if restart not in ("never", "on-trap"):
            raise ValueError(f"restart must be 'never' or 'on-trap', got {restart!r}")
        given = {
            "loas": loas, "timeout": timeout, "fuel": fuel, "max_memory": max_memory,
            "mode": mode, "stdout": stdout, "on_effect": on_effect, "cache": cache,
            "wasi": wasi, "compact": compact, "trust": trust, "policy": policy,
        }  # fmt: skip
        opts = SpiritOptions.of(options, given)  # validated here, before anything crosses
        trusted = opts.trust  # verified here: a TrustPolicy holds keys that do not pickle
        shipped_options = _crossing(attrs.evolve(opts, trust=None))
        names = [name]
        if isinstance(source, Ghost):
            names = [f"{name}.{part}" for part in source.parts]
        self._check_free(names)
        shipped: bytes | Ghost
        kwargs: dict[str, Any]
        if isinstance(source, Ghost):
            parts = await asyncio.to_thread(
                lambda: {p: _wasm(src, f"{name}.{p}", trusted) for p, src in source.parts.items()}
            )
            shipped = Ghost(parts=parts, links=source.links, entry=source.entry)
            kwargs = {"loas": shipped_options.loas}
            entry = f"{name}.{source.entry_part}" if source.parts else name
        else:
            entry = name
            if isinstance(source, bytes) and source[:4] == b"\0asm" and trusted is None:
                shipped = source
            else:
                shipped = await asyncio.to_thread(_wasm, source, name, trusted)
            kwargs = {"options": shipped_options, "restart": restart, "links": dict(links or {})}
        self._check_open()
        self._check_free(names)  # again: another summon may have taken a name meanwhile
        where = self._choose(name, actor, links or {})
        for n in names:
            self._reserved[n] = where
        try:
            ref = self.backend.hosts[where].summon.remote(self.session, name, shipped, kwargs)
            added: list[str] = await _wait(ref, repr(name))
        finally:
            for n in names:
                self._reserved.pop(n, None)
        if self._dismissed:  # dismissed meanwhile: the actor's Séance is gone too
            self._check_open()
        for n in added:
            self._placement[n] = where
        await self._place(added, where, skip=where)
        return RemoteSpirit(entry, where, self)

    async def _place(self, names: list[str], where: int | None, *, skip: int) -> None:
        """Tell every other actor (and the hub) where ``names`` are now (None: gone)."""
        if not names:
            return
        count = len(self.backend.hosts)
        refs = [
            self._bus_method(k, "place").remote(self.session, names, where)
            for k in range(count + 1)
            if k != skip
        ]
        await asyncio.gather(*(_wait(ref, "the Séance directory") for ref in refs))

    async def release(self, name: str) -> None:
        """Dismiss one Spirit on its actor; its name becomes free again."""
        where = self._actor_of(name)
        del self._placement[name]
        self.failures.pop(name, None)
        await self._place([name], None, skip=where)
        await _wait(self.backend.hosts[where].release.remote(self.session, name), repr(name))

    async def restart(self, name: str) -> RemoteSpirit:
        """Replace ``name`` with a fresh instance of the same source and options, there."""
        where = self._actor_of(name)
        await _wait(self.backend.hosts[where].restart.remote(self.session, name), repr(name))
        self.failures.pop(name, None)
        return RemoteSpirit(name, where, self)

    async def interrupt(self, name: str) -> bool:
        """Stop the call running in Spirit ``name`` within one epoch tick; True if one ran."""
        where = self._actor_of(name)
        ref = self._bus_method(where, "interrupt").remote(self.session, name)
        return bool(await _wait(ref, repr(name)))

    async def dismiss(self) -> None:
        """Release every Spirit and close the session on every actor. Harmless twice."""
        if self._dismissed:
            return
        self._dismissed = True
        self._placement.clear()
        handles = [*self.backend.hosts, self.backend.hub]
        refs = [handle.close.remote(self.session) for handle in handles]
        results = await asyncio.gather(
            *(_wait(ref, "the Séance") for ref in refs), return_exceptions=True
        )
        for result in results:  # a dead actor has nothing left to release
            if isinstance(result, BaseException) and not isinstance(result, SeanceError):
                raise result

    # ---- calls -----------------------------------------------------------------------------

    async def invoke(
        self,
        name: str,
        fn: str,
        *args: Any,
        timeout: float | None = None,
        mode: CallMode | None = None,
        returns: Any = None,
    ) -> Any:
        """Call ``fn`` on ``name``'s actor (one actor call); a trap is recorded in
        ``failures``. ``returns=str`` (or bytes, a GeneLayout) reads the returned pointer
        there. Cancelling the awaiting task cancels the call and stops the guest."""
        where = self._actor_of(name)
        if mode is not None and mode not in CALL_MODES:
            raise ValueError(f"mode must be 'auto', 'inline' or 'thread', got {mode!r}")
        ref = self.backend.hosts[where].invoke.remote(
            self.session, name, fn, args, timeout, mode, returns
        )
        try:
            return await _wait(ref, repr(name))
        except SpiritTrap as exc:
            self.failures[name] = exc
            raise

    async def invoke_many(
        self,
        name: str,
        fn: str,
        calls: Iterable[Any],
        *,
        timeout: float | None = None,
        returns: Any = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Run ``fn`` once per item of ``calls`` (a tuple or list: the arguments of one
        call; anything else: its one argument), in order, in ONE actor call; the results
        in a list, as ``[await invoke(name, fn, *args) for args in calls]`` would give.

        The first call that raises stops the batch and its error is raised (the calls
        before it ran); with ``return_exceptions=True`` its error takes its place in the
        list and the batch goes on. ``timeout=`` is per call; a trap is recorded in
        ``failures`` (and restarts a ``restart="on-trap"`` Spirit before the next call).
        """
        where = self._actor_of(name)
        batch = calls if isinstance(calls, list) else list(calls)
        ref = self.backend.hosts[where].invoke_many.remote(
            self.session, name, fn, _pack(batch), timeout, returns, return_exceptions
        )
        try:
            results: list[Any] = _unpack(await _wait(ref, repr(name)))
        except SpiritTrap as exc:
            self.failures[name] = exc
            raise
        if return_exceptions:
            for k, value in enumerate(results):
                if type(value) is _Failure:
                    error = results[k] = value.rebuild()
                    if isinstance(error, SpiritTrap):
                        self.failures[name] = error
        return results

    def stats(self) -> dict[str, SpiritStats]:
        """What each member did through invoke and invoke_many (blocks for one round trip
        to every actor; :meth:`stats_async` awaits). Empty once dismissed."""
        if self._dismissed:
            return {}
        refs = [h.stats.remote(self.session) for h in self.backend.hosts]
        return self._ordered(_get_all(refs, "the Séance stats"))

    async def stats_async(self) -> dict[str, SpiritStats]:
        if self._dismissed:
            return {}
        refs = [h.stats.remote(self.session) for h in self.backend.hosts]
        parts = await asyncio.gather(*(_wait(ref, "the Séance stats") for ref in refs))
        return self._ordered(parts)

    def _ordered(self, parts: Iterable[dict[str, SpiritStats]]) -> dict[str, SpiritStats]:
        found: dict[str, SpiritStats] = {}
        for part in parts:
            found.update(part)
        return {name: found[name] for name in self._placement if name in found}

    # ---- membership ------------------------------------------------------------------------

    def __getitem__(self, name: str) -> RemoteSpirit:
        return RemoteSpirit(name, self._actor_of(name), self)

    def __contains__(self, name: object) -> bool:
        return name in self._placement

    def __len__(self) -> int:
        return len(self._placement)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._placement))

    @property
    def names(self) -> list[str]:
        return list(self._placement)

    @property
    def placement(self) -> dict[str, int]:
        """Spirit name -> index of the host actor it runs on."""
        return dict(self._placement)

    @property
    def dismissed(self) -> bool:
        return self._dismissed

    # ---- messages from the host ----------------------------------------------------------

    def _send_ref(self, from_: str, to: str, payload: bytes | str, channel: int) -> Any:
        self._check_open()
        if to not in self._placement:
            raise SeanceError(f"no Spirit named {to!r} to send to; summoned: {self.names}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        method = self._bus_method(self._placement[to], "deliver")
        return method.remote(self.session, from_, to, data, channel, 0, 0)

    def send(self, from_: str, to: str, payload: bytes | str, channel: int = 0) -> bool:
        """Queue a message to ``to`` as if ``from_`` sent it; False if its queue is full.
        Blocks for one round trip to ``to``'s actor (:meth:`send_async` awaits)."""
        return bool(_get(self._send_ref(from_, to, payload, channel), repr(to)))

    async def send_async(self, from_: str, to: str, payload: bytes | str, channel: int = 0) -> bool:
        return bool(await _wait(self._send_ref(from_, to, payload, channel), repr(to)))

    def _pending_ref(self, name: str, channel: int) -> Any:
        self._check_open()
        where = self._placement.get(name, len(self.backend.hosts))  # else a listener: the hub
        return self._bus_method(where, "pending").remote(self.session, name, channel)

    def pending(self, name: str, channel: int = 0) -> int:
        """Messages waiting for ``name`` (a Spirit or a host-side listener) on ``channel``."""
        return int(_get(self._pending_ref(name, channel), repr(name)))

    async def pending_async(self, name: str, channel: int = 0) -> int:
        return int(await _wait(self._pending_ref(name, channel), repr(name)))

    async def listen(self, name: str) -> None:
        """Make ``name`` a host-side listener now, so Spirits can send to it before the
        first :meth:`receive` (which also makes it one)."""
        self._check_open()
        await _wait(self.backend.hub.listen.remote(self.session, name), repr(name))

    async def receive(
        self, name: str, *, channel: int = 0, timeout: float | None = None
    ) -> Message:
        """Wait for the next message addressed to ``name``: a host-side listener (its
        mailbox is in the hub actor), or a summoned Spirit (taking its messages)."""
        self._check_open()
        endpoint = self.backend.hosts[self._placement[name]] if name in self else self.backend.hub
        message: Message = await _wait(
            endpoint.receive.remote(self.session, name, channel, timeout), repr(name)
        )
        return message

    async def request(
        self,
        to: str,
        payload: bytes | str,
        *,
        timeout: float | None = 5.0,
        channel: int = 0,
        from_: str = "host",
    ) -> bytes:
        """Send ``to`` a request and wait for its reply's payload (RequestTimeout after
        ``timeout`` seconds); the request waits in the hub actor."""
        self._check_open()
        if to not in self._placement:
            raise SeanceError(f"no Spirit named {to!r} to ask; summoned: {self.names}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        ref = self.backend.hub.ask.remote(self.session, from_, to, data, channel, timeout)
        reply: bytes = await _wait(ref, repr(to))
        return reply

    def reply(self, request: Message, payload: bytes | str, *, from_: str = "host") -> bool:
        """Answer a request a Spirit sent a host-side listener; False when its requester
        is gone (blocks for one round trip to the requester's actor)."""
        self._check_open()
        if not request.request_id:
            raise SeanceError(f"{request!r} is not a request: it has no request_id")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        owner = (request.request_id - 1) % (len(self.backend.hosts) + 1)
        ref = self._bus_method(owner, "reply").remote(self.session, from_, request.request_id, data)
        return bool(_get(ref, repr(request.sender)))

    def __repr__(self) -> str:
        state = "dismissed" if self._dismissed else f"{len(self)} Spirits"
        where = ", ".join(f"{n}@{k}" for n, k in self._placement.items())
        return f"<RaySeance {state} on {self.backend.actors} Ray actors: {where}>"
