"""The instance manager: Stores and instances of linked modules, warm, reset on release.

One :class:`InstanceManager` serves one module linked with one grant (and one memory cap):
it hands out instances in O(1) from a warm set, and takes them back on release. A
returned instance whose state can be restored from outside (see ``_binary.expose_state``)
gets its memory image, mutable globals and tables reset to what they were right after
instantiation and is handed out again; one that trapped, was stopped, grew its memory or
exposed memory views is discarded, as is every instance of a module that cannot be reset.
"""

from __future__ import annotations

import collections
import ctypes
import threading
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import wasmtime

from vudo_runtime import _native
from vudo_runtime._binary import StateExports
from vudo_runtime.cache import interface_of, state_of, wasm_digest
from vudo_runtime.engine import (
    MAX_TABLE_ELEMENTS,
    EngineSettings,
    begin_call,
    clear_stop,
    end_call,
    get_engine,
    take_stop,
    watch_store,
)
from vudo_runtime.errors import SpiritLoadError, trap_reason
from vudo_runtime.linking import HostBindings, LinkPlan, link
from vudo_runtime.loa import HostContext, Loa
from vudo_runtime.loas.wasi import WasiOptions
from vudo_runtime.module import module_info
from vudo_runtime.registry import LoaRegistry
from vudo_runtime.threads import worker_pool

_NO_WASI = WasiOptions()

#: Idle instances a manager keeps for reuse; more are discarded on release.
KEEP = 16
#: Memories larger than this are not copied back on release: the instance is discarded,
#: and a fresh one (copy-on-write image, pooling allocator's reset) is cheaper.
RESET_MAX_MEMORY = 1 << 20
#: Tables larger than this are not restored element by element; the instance is discarded.
RESET_MAX_TABLE = 4096


@attrs.define(eq=False)
class Instance:
    """One wasm instance in its own Store, as the manager hands it to a Spirit."""

    store: wasmtime.Store
    instance: wasmtime.Instance
    address: int  # the Store's context address: keys its deadline and host bindings
    module: wasmtime.Module
    bindings: HostBindings | None
    #: One thread in a Store at a time; the parts of a Ghost share their Store's lock.
    lock: Any = attrs.field(factory=threading.RLock)
    manager: InstanceManager | None = None
    #: False once something happened that a reset cannot undo (a trap, a stop, a view of
    #: its memory handed out, another module linked into its Store).
    clean: bool = True
    #: How many users it has had (1: fresh; more: reset and reused).
    uses: int = 1
    #: Writes the snapshot back into this instance (built on its first release).
    reset: Callable[[], bool] | None = None


@attrs.define
class _Snapshot:
    """The state of a fresh instance, restored into reused ones."""

    memories: list[ctypes.Array[ctypes.c_char]]  # each memory's bytes
    globals: list[Any]
    tables: list[list[Any]]


def new_store(
    settings: EngineSettings, *, max_memory: int | None, fuel: int | None
) -> tuple[wasmtime.Store, int]:
    """A Store with the runtime's epoch watch, limits and fuel; and its context address."""
    store = wasmtime.Store(get_engine(settings))
    address = _native.store_address(store)
    watch_store(store, address)
    store.set_limits(
        memory_size=-1 if max_memory is None else max_memory,
        table_elements=MAX_TABLE_ELEMENTS,
    )
    if fuel is not None:
        store.set_fuel(fuel)
    return store, address


def _apply_wasi(wasi: WasiOptions, store: wasmtime.Store, name: str) -> None:
    try:
        wasi.apply(store, name)
    except (ValueError, OSError, wasmtime.WasmtimeError) as exc:
        raise SpiritLoadError(
            f"Spirit {name!r}: its WASI options cannot be applied: {exc}"
        ) from exc


def instantiate(
    module: wasmtime.Module,
    pre: wasmtime.InstancePre,
    bindings: HostBindings | None,
    *,
    settings: EngineSettings,
    name: str,
    timeout: float | None = None,
    fuel: int | None = None,
    max_memory: int | None = None,
    wasi: WasiOptions | None = None,
) -> Instance:
    """A fresh instance of an already linked module, in a Store of its own; with ``wasi``,
    a WASI state of its own made from those options."""
    store, address = new_store(settings, max_memory=max_memory, fuel=fuel)
    if wasi is not None:
        _apply_wasi(wasi, store, name)
    if bindings is not None:
        bindings.bind_store(address)
    if timeout is not None:  # a start function is bounded like a call
        begin_call(address, timeout)
    try:
        instance = pre.instantiate(store)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        cause = bindings.take_error() if bindings is not None else None
        if bindings is not None:
            bindings.detach()
        what = exc.message if isinstance(exc, wasmtime.Trap) else str(exc)
        if take_stop(address) is not None:
            what = f"its start function ran past the timeout of {timeout}s"
        reason = trap_reason(what)
        if "pooling" in reason or "pooling" in str(cause or ""):
            reason += "; the pooling allocator's slots are exhausted: close unused Spirits or pools"
        raise SpiritLoadError(f"Spirit {name!r} could not be instantiated: {reason}") from (
            cause or exc
        )
    finally:
        if timeout is not None:
            end_call(address, None)
    return Instance(store, instance, address, module, bindings)


class InstanceManager:
    """Instances of one module linked with one grant, memory cap and fuel setting."""

    def __init__(
        self,
        module: wasmtime.Module,
        settings: EngineSettings,
        plan: LinkPlan,
        pre: wasmtime.InstancePre,
        *,
        max_memory: int | None = None,
        keep: int = KEEP,
        warm: int = 0,
    ) -> None:
        self.module = module
        self.settings = settings
        self.plan = plan
        self.pre = pre
        self.max_memory = max_memory
        self.keep = keep
        #: Idle instances kept ready: a worker thread tops them up after each acquire.
        self.warm = warm
        self._refilling = False
        self.info = module_info(module)
        self.state: StateExports | None = state_of(module)
        interface = interface_of(module)
        #: Instantiating runs guest code (a start function), so it may take long.
        self.has_start = interface is None or interface.has_start
        self._snapshot: _Snapshot | None = None
        self._idle: collections.deque[Instance] = collections.deque()
        self._lock = threading.Lock()
        self.created = self.reused = self.discarded = 0
        self.closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def resettable(self) -> bool:
        return self.state is not None and self.state.resettable

    def acquire(
        self,
        context: HostContext,
        *,
        fuel: int | None = None,
        timeout: float | None = None,
        wasi: WasiOptions | None = None,
    ) -> Instance:
        """An instance for a new user: a warm one when there is one, else a fresh one.

        A WASI module's instance gets a WASI state of its own from ``wasi`` (default: no
        arguments, no directories, empty stdin, this process's stdout and stderr).
        """
        wasi = self._wasi_for(wasi)
        if self.warm:
            self._schedule_refill()
        try:
            inst = self._idle.pop()
        except IndexError:
            return self.instantiate(context, fuel=fuel, timeout=timeout, wasi=wasi)
        assert inst.bindings is not None  # idle instances keep theirs, still registered
        if wasi is not None:  # a fresh WASI state: no open files of the last user
            _apply_wasi(wasi, inst.store, context.spirit_name)
        inst.bindings.rebind(context)
        inst.uses += 1
        if fuel is not None:
            inst.store.set_fuel(fuel)
        self.reused += 1
        return inst

    def instantiate(
        self,
        context: HostContext,
        *,
        fuel: int | None = None,
        timeout: float | None = None,
        wasi: WasiOptions | None = None,
    ) -> Instance:
        """A fresh instance (the first one also gives the snapshot reused ones get back)."""
        wasi = self._wasi_for(wasi)
        inst = instantiate(
            self.module,
            self.pre,
            HostBindings(self.plan, context),
            settings=self.settings,
            name=context.spirit_name,
            timeout=timeout,
            fuel=fuel,
            max_memory=self.max_memory,
            wasi=wasi,
        )
        inst.manager = self
        with self._lock:
            self.created += 1
            if self._snapshot is None and self.resettable:
                self._snapshot = self._take_snapshot(inst)
        return inst

    def _wasi_for(self, wasi: WasiOptions | None) -> WasiOptions | None:
        """The WASI options an instance gets: only a WASI module has any (the defaults
        when none are given)."""
        return (wasi or _NO_WASI) if self.plan.wasi else None

    def fill(self) -> None:
        """Make instances until ``warm`` are idle (a pool's warm-up, off the event loop)."""
        try:
            while not self.closed and len(self._idle) < self.warm:
                self._idle.append(self.instantiate(HostContext("warm")))
        finally:
            self._refilling = False

    def _schedule_refill(self) -> None:
        # One refill at a time; it runs after the acquire that needed it has taken its own.
        if self.closed or self._refilling or len(self._idle) > self.warm:
            return
        self._refilling = True
        worker_pool().submit(self.fill)

    def release(self, inst: Instance) -> None:
        """Take ``inst`` back from its user: reset and keep it, or discard it."""
        bindings = inst.bindings
        assert bindings is not None
        bindings.context.attach(None)  # a context kept by a host function sees no Spirit
        clear_stop(inst.address)
        if self.closed or not inst.clean or len(self._idle) >= self.keep or not self._reset(inst):
            bindings.detach()
            self.discarded += 1
            return
        self._idle.append(inst)  # its bindings stay registered: acquire rebinds them

    def close(self) -> None:
        """Discard the idle instances; instances in use are discarded when released."""
        self.closed = True
        while self._idle:
            self._idle.pop()

    # ---- reset ----------------------------------------------------------------------

    def _exports(self, inst: Instance, names: tuple[str, ...]) -> list[Any]:
        return [_native.get_export(inst.store, inst.instance, n) for n in names]

    def _take_snapshot(self, inst: Instance) -> _Snapshot | None:
        state = self.state
        assert state is not None
        store = inst.store
        images = []
        for mem in self._exports(inst, state.memories):
            size = mem.data_len(store)
            if size > RESET_MAX_MEMORY:
                return None
            image = ctypes.create_string_buffer(size)
            ctypes.memmove(image, mem.data_ptr(store), size)
            images.append(image)
        tables = []
        for table in self._exports(inst, state.tables):
            size = table.size(store)
            if size > RESET_MAX_TABLE:
                return None
            items = [table.get(store, i) for i in range(size)]
            # wasmtime-py reads a null reference as a Val it cannot write back: use None
            tables.append([v.value if isinstance(v, wasmtime.Val) else v for v in items])
        values = [g.value(store) for g in self._exports(inst, state.globals)]
        return _Snapshot(images, values, tables)

    def _reset(self, inst: Instance) -> bool:
        """Restore ``inst`` to the snapshot; False when it cannot be (then it is dropped)."""
        snap, state = self._snapshot, self.state
        if snap is None or state is None:
            return False
        if inst.reset is None:
            mems = zip(self._exports(inst, state.memories), snap.memories, strict=True)
            values = zip(self._exports(inst, state.globals), snap.globals, strict=True)
            inst.reset = _native.state_resetter(inst.store, list(mems), list(values))
        try:
            if not inst.reset():  # a memory grew: its pages cannot be given back
                return False
            if snap.tables:
                store = inst.store
                for table, items in zip(
                    self._exports(inst, state.tables), snap.tables, strict=True
                ):
                    if table.size(store) != len(items):
                        return False
                    for i, item in enumerate(items):
                        table.set(store, i, item)
        except wasmtime.WasmtimeError:
            return False
        return True


# ---- the process-wide managers --------------------------------------------------------------

ManagerKey = tuple[wasmtime.Module, EngineSettings, tuple[Loa, ...], bool, int | None]

_managers: dict[ManagerKey, InstanceManager] = {}
_managers_lock = threading.Lock()


def manager_for(
    module: wasmtime.Module,
    settings: EngineSettings,
    name: str,
    granted: tuple[Loa, ...],
    registry: LoaRegistry,
    *,
    unchecked: bool = True,
    max_memory: int | None = None,
) -> InstanceManager:
    """The process-wide manager of ``module`` linked with ``granted`` (made on first use)."""
    key = (module, settings, granted, unchecked, max_memory)
    manager = _managers.get(key)
    if manager is None:
        plan, pre = link(module, settings, name, granted, registry, unchecked=unchecked)
        with _managers_lock:
            manager = _managers.get(key)
            if manager is None or manager.closed:
                manager = _managers[key] = InstanceManager(
                    module, settings, plan, pre, max_memory=max_memory
                )
    return manager


# ---- managers of open InstancePools, which loads of the same module draw from ---------------

PoolKey = tuple[bytes, bool, int | None, frozenset[Loa]]

_shared: dict[PoolKey, InstanceManager] = {}


def pool_key(
    wasm: bytes, fuel: int | None, max_memory: int | None, grant: Iterable[Loa]
) -> PoolKey:
    """Instances are interchangeable when module, fuel metering, memory cap and Loas match."""
    return (wasm_digest(wasm), fuel is not None, max_memory, frozenset(grant))


def share(key: PoolKey, manager: InstanceManager) -> None:
    """Let loads of ``key``'s module draw from ``manager`` (the first one shared stays)."""
    with _managers_lock:
        _shared.setdefault(key, manager)


def unshare(key: PoolKey, manager: InstanceManager) -> None:
    with _managers_lock:
        if _shared.get(key) is manager:
            del _shared[key]


def pools_open() -> bool:
    """Whether some shared InstancePool is open (loads then look for one of theirs)."""
    return bool(_shared)


def shared_manager(
    wasm: bytes, fuel: int | None, max_memory: int | None, grant: Iterable[Loa]
) -> InstanceManager | None:
    """The manager of an open, shared InstancePool of this module, if there is one."""
    if not _shared:
        return None
    return _shared.get(pool_key(wasm, fuel, max_memory, grant))
