"""Spirit: one loaded, instantiated WebAssembly module, called from sync or async code."""

from __future__ import annotations

import asyncio
import contextlib
import operator
import os
import threading
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn, TypeGuard, TypeVar

import attrs
import wasmtime

from vudo_runtime import _native
from vudo_runtime.cache import CacheOption, compile_module, generation
from vudo_runtime.engine import (
    LOOP_STALL,
    begin_call,
    clear_stop,
    end_call,
    request_stop,
    take_stop,
)
from vudo_runtime.errors import (
    ArgumentError,
    ExportNotFoundError,
    FuelExhausted,
    MemoryAccessError,
    NoMemoryError,
    SpiritClosedError,
    SpiritExit,
    SpiritInterrupted,
    SpiritTimeout,
    SpiritTrap,
    VudoError,
    trap_reason,
)
from vudo_runtime.instances import (
    Instance,
    InstanceManager,
    manager_for,
    pools_open,
    shared_manager,
)
from vudo_runtime.layout import GeneLayout
from vudo_runtime.loa import HostContext, awaiting_host
from vudo_runtime.loas.wasi import Preopen, WasiOptions
from vudo_runtime.manifest import Manifest, load_manifest
from vudo_runtime.memory import MemoryManager
from vudo_runtime.module import (
    Signature,
    Source,
    default_name,
    known_wasm,
    module_info,
    read_source,
    source_key,
)
from vudo_runtime.options import CallMode as CallMode
from vudo_runtime.options import SpiritOptions
from vudo_runtime.protocols import protocol_facade
from vudo_runtime.registry import LoaRegistry, default_registry, resolve_grant
from vudo_runtime.signing import verify
from vudo_runtime.threads import owns, running_loop, stack, worker_pool

if TYPE_CHECKING:
    from vudo_runtime.manifest import HostPolicy
    from vudo_runtime.registry import LoaGrant
    from vudo_runtime.signing import TrustPolicy

T = TypeVar("T")

#: In ``mode="auto"``, a function whose calls take longer than this moves to worker threads.
THREAD_THRESHOLD = 0.002


@attrs.define(eq=False)
class _Export:
    """One exported function: its signature, its fast caller, and how async calls run it."""

    name: str
    signature: Signature
    invoke: Callable[..., Any]
    mode: CallMode = "auto"
    # learned: recent calls ran longer than THREAD_THRESHOLD. Unknown counts as slow, so an
    # awaited first call never blocks the event loop; a short one makes the next run inline.
    slow: bool = True


class Spirit:
    """A loaded Spirit. Create with :func:`load_spirit`, ``Spirit.load`` or ``Spirit.load_sync``.

    A Store is used by one thread at a time: calls on one Spirit are serialised, and calls on
    different Spirits run in parallel. After a trap the instance stays usable; the guest's
    memory and globals keep whatever the trapped call had written before it trapped.
    """

    def __init__(
        self,
        instance: Instance,
        *,
        name: str,
        timeout: float | None = None,
        fuel: int | None = None,
        mode: CallMode = "auto",
        unchecked: bool = True,
    ) -> None:
        self.name = name
        self.module = instance.module
        self._inst = instance
        self._store = instance.store
        self._address = instance.address  # keys its call deadline
        self._instance = instance.instance
        bindings = self._bindings = instance.bindings
        self.timeout: float | None
        self.fuel: int | None
        self.mode: CallMode = mode
        # Spirits sharing a Store (a Ghost) share its lock: one thread in a Store at a time.
        self._lock = instance.lock
        self._closed = False
        self._in_flight = 0  # awaited calls on worker threads, running or queued
        # The awaited call running on a worker thread now (its cancel event), under _ctl:
        # a cancelled await stops exactly that call, never the next one.
        self._ctl = threading.Lock()
        self._running: threading.Event | None = None
        manager = instance.manager
        self._info = manager.info if manager is not None else module_info(self.module)
        self._unchecked = unchecked
        # Exports and memory are bound on first use: a fresh instance costs microseconds.
        self._funcs: dict[str, _Export] = {}
        self._memory: MemoryManager | None = None
        #: The spirit.toml it was loaded from (its ``config`` values, grants and limits).
        self.manifest: Manifest | None = None
        # Spirits importing async host functions must run off the event loop thread.
        self._needs_thread = needs_thread = bindings is not None and bindings.has_async
        # What configure() sets, inline: no exports are bound yet (summons are hot).
        self.timeout, self.fuel = timeout, fuel
        self._plain = timeout is None and fuel is None and not needs_thread
        if bindings is not None:
            bindings.context.attach(self)

    @property
    def instance(self) -> Instance:
        """The instance this Spirit wraps, as the instance manager handed it out (not
        after close: it may serve another Spirit by then)."""
        if self._closed:
            raise self._closed_error()
        return self._inst

    def configure(
        self, *, timeout: float | None = None, fuel: int | None = None, mode: CallMode = "auto"
    ) -> None:
        """Set the default per-call ``timeout``, ``fuel`` budget and call ``mode``."""
        self.timeout, self.fuel, self.mode = timeout, fuel, mode
        for export in self._funcs.values():
            export.mode = "thread" if self._needs_thread else mode
        # No per-call deadline, fuel or thread routing: the shortest path applies.
        self._plain = timeout is None and fuel is None and not self._needs_thread

    # ---- loading -------------------------------------------------------------------------

    @classmethod
    def load_sync(
        cls,
        source: Source,
        *,
        options: SpiritOptions | None = None,
        name: str | None = None,
        loas: LoaGrant = None,
        cache: CacheOption = True,
        timeout: float | None = None,
        fuel: int | None = None,
        max_memory: int | None = None,
        mode: CallMode = "auto",
        stdout: Any = None,
        on_effect: Callable[..., Any] | None = None,
        seance: Any = None,
        registry: LoaRegistry | None = None,
        unchecked: bool = True,
        wasi: WasiOptions | None = None,
        compact: bool = False,
        trust: TrustPolicy | None = None,
        policy: HostPolicy | None = None,
    ) -> Spirit:
        """Load and instantiate a Spirit without an event loop (see :func:`load_spirit`)."""
        return cls._load_sync(source, SpiritOptions.of(options, locals()))

    @classmethod
    def _load_sync(
        cls, source: Source, opts: SpiritOptions, manager: InstanceManager | None = None
    ) -> Spirit:
        """Load with ``manager`` (from :func:`ready_manager`) or the one ``source`` needs."""
        manifest = None
        if not isinstance(source, bytes) and is_manifest(source):
            source, opts, manifest = _from_manifest(source, opts)
        if manager is None:
            manager, key = (None, None) if pools_open() else _lookup(source, opts)
            if manager is None:
                manager = _manager(source, opts)
                if key is not None and not pools_open():
                    if len(_recipes) >= 256:
                        _recipes.clear()
                    _recipes[key] = manager
        spirit_name = opts.name or default_name(source)
        context = HostContext(
            spirit_name, stdout=opts.stdout, on_effect=opts.on_effect, seance=opts.seance
        )
        instance = manager.acquire(context, fuel=opts.fuel, timeout=opts.timeout, wasi=opts.wasi)
        spirit = cls(
            instance,
            name=spirit_name,
            timeout=opts.timeout,
            fuel=opts.fuel,
            mode=opts.mode,
            unchecked=opts.unchecked,
        )
        spirit.manifest = manifest
        return spirit

    @classmethod
    async def load(
        cls,
        source: Source,
        *,
        options: SpiritOptions | None = None,
        name: str | None = None,
        loas: LoaGrant = None,
        cache: CacheOption = True,
        timeout: float | None = None,
        fuel: int | None = None,
        max_memory: int | None = None,
        mode: CallMode = "auto",
        stdout: Any = None,
        on_effect: Callable[..., Any] | None = None,
        seance: Any = None,
        registry: LoaRegistry | None = None,
        unchecked: bool = True,
        wasi: WasiOptions | None = None,
        compact: bool = False,
        trust: TrustPolicy | None = None,
        policy: HostPolicy | None = None,
    ) -> Spirit:
        """Load a Spirit; reading and compiling (when not cached) run on a worker thread."""
        return await cls._load(source, SpiritOptions.of(options, locals()))

    @classmethod
    async def _load(cls, source: Source, opts: SpiritOptions) -> Spirit:
        if (manager := ready_manager(source, opts)) is not None:
            return cls._load_sync(source, opts, manager)  # microseconds: no thread hop
        if (wasm := known_wasm(source, opts.engine)) is not None:
            if opts.name is None:
                opts = attrs.evolve(opts, name=default_name(source))
            return cls._load_sync(wasm, opts)  # microseconds: a thread hop costs more
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(worker_pool(), lambda: cls._load_sync(source, opts))

    # ---- introspection -------------------------------------------------------------------

    @property
    def exports(self) -> dict[str, str]:
        """Every export name mapped to its kind: ``func``, ``memory``, ``global``, ``table``."""
        return dict(self._info.exports)

    def list_functions(self) -> list[str]:
        return list(self._info.signatures)

    def has_function(self, fn: str) -> bool:
        return fn in self._info.signatures

    def signature(self, fn: str) -> Signature:
        sig = self._info.signatures.get(fn)
        if sig is None:
            raise ExportNotFoundError(self.name, fn, self.list_functions())
        return sig

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def memory(self) -> MemoryManager | None:
        """The MemoryManager of the exported memory (None when the Spirit exports none)."""
        memory = self._memory
        if memory is None and self._info.memory is not None and not self._closed:
            raw = _native.get_export(self._store, self._instance, self._info.memory)
            memory = self._memory = self._make_memory(raw)
        return memory

    def _export(self, fn: str) -> _Export:
        """The bound export ``fn``, building its fast caller on first use."""
        export = self._funcs.get(fn)
        if export is not None:
            return export
        if self._closed:
            raise self._closed_error()
        sig = self._info.signatures.get(fn)
        if sig is None:
            raise ExportNotFoundError(self.name, fn, self.list_functions())
        func = _native.get_export(self._store, self._instance, fn)
        export = _Export(
            fn,
            sig,
            self._make_invoke(fn, func, sig, self._unchecked),
            mode="thread" if self._needs_thread else self.mode,
        )
        self._funcs[fn] = export
        return export

    def _closed_error(self) -> SpiritClosedError:
        return SpiritClosedError(f"Spirit {self.name!r} is closed; load it again")

    # ---- calls -----------------------------------------------------------------------------

    def call_sync(
        self, fn: str, *args: Any, timeout: float | None = None, returns: Any = None
    ) -> Any:
        """Call export ``fn`` on this thread; blocks until it returns.

        ``returns=str`` (or ``bytes``, a ``GeneLayout``, a generated gene class) reads the
        returned guest pointer back as that value.
        """
        if returns is not None:
            return self.read_back(self.call_sync(fn, *args, timeout=timeout), returns)
        try:
            export = self._funcs[fn]
        except KeyError:
            export = self._export(fn)
        lock = self._lock
        if self._plain and timeout is None and stack.ok and lock.acquire(False):
            try:
                if self._closed:  # closed after the export was looked up: not ours now
                    raise self._closed_error()
                return export.invoke(*args)
            except (wasmtime.Trap, wasmtime.WasmtimeError, TypeError) as exc:
                raise self._call_error(export, args, exc, None) from self._host_cause(exc)
            finally:
                lock.release()
        if self._needs_thread and running_loop() is not None:
            raise VudoError(
                f"Spirit {self.name!r} imports async host functions; call it with "
                "`await spirit.call(...)`, not call_sync, from inside an event loop"
            )
        if not stack.ok and not owns(lock):
            # This thread's stack is too small for the guest: run the call on a worker.
            return worker_pool().submit(self.call_sync, fn, *args, timeout=timeout).result()
        with lock:
            if self._closed:  # closed while this call waited for the Store
                raise self._closed_error()
            return self._run(export, args, timeout)

    async def call(
        self,
        fn: str,
        *args: Any,
        timeout: float | None = None,
        mode: CallMode | None = None,
        returns: Any = None,
    ) -> Any:
        """Call export ``fn``. Short calls run inline; long ones on a worker thread.

        The event loop is never blocked by a call known to be long: in ``auto`` mode a
        function moves to worker threads as soon as one call took longer than
        THREAD_THRESHOLD (and back when its calls get short). ``mode="thread"`` never runs
        on the loop thread; ``mode="inline"`` always does. ``returns=`` as in call_sync.
        """
        if returns is not None:
            result = await self.call(fn, *args, timeout=timeout, mode=mode)
            return self.read_back(result, returns)
        try:
            export = self._funcs[fn]
        except KeyError:
            export = self._export(fn)
        lock = self._lock
        small = not stack.ok  # too little stack here for the guest: a worker runs it
        if (
            mode is None
            and export.mode == "auto"
            and not export.slow
            and not small
            and lock.acquire(False)
        ):
            # The common case: a short call, run right here with its duration watched.
            start = perf_counter()
            try:
                return self._run(export, args, timeout)
            finally:
                lock.release()
                export.slow = perf_counter() - start > THREAD_THRESHOLD
        how = mode or export.mode
        if how == "inline" and not self._needs_thread and not small and lock.acquire(False):
            try:
                return self._run(export, args, timeout)
            finally:
                lock.release()
        if self._address in awaiting_host.get():
            raise VudoError(
                f"an async host function of Spirit {self.name!r} called back into it; the "
                "Spirit is busy running the call that awaits this host function. Make the "
                "host function sync (a sync host function may call back with call_sync) "
                "or call another Spirit"
            )
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        self._in_flight += 1
        try:
            return await loop.run_in_executor(
                worker_pool(), self._run_threaded, export, args, timeout, loop, cancelled
            )
        except asyncio.CancelledError:
            cancelled.set()  # a call still waiting for the Store must not start later
            with self._ctl:
                if self._running is cancelled:  # running now: stop the guest too
                    request_stop(self._address, "cancelled")
            raise
        finally:
            self._in_flight -= 1

    async def run(self, *, timeout: float | None = None, mode: CallMode | None = None) -> int:
        """Run a WASI program (its ``_start``) to the end; returns its exit status.

        Its arguments, environment, directories and streams are the ``wasi=`` options it
        was loaded with. A program that returns from ``_start`` exits with 0.
        """
        try:
            await self.call("_start", timeout=timeout, mode=mode)
        except SpiritExit as exc:
            return exc.status
        return 0

    def run_sync(self, *, timeout: float | None = None) -> int:
        """:meth:`run` without an event loop."""
        try:
            self.call_sync("_start", timeout=timeout)
        except SpiritExit as exc:
            return exc.status
        return 0

    def interrupt(self) -> bool:
        """Stop the call running in this Spirit within one epoch tick; safe from any thread.

        The call raises :class:`SpiritInterrupted`; the Spirit stays usable (its memory
        keeps what the call wrote before it stopped). Returns False when no call ran.
        """
        if self._closed:  # its instance may be another Spirit's now: never stop that one
            return False
        with self._ctl:
            if self._running is not None:  # an awaited call on a worker thread
                request_stop(self._address, "interrupt")
                return True
        lock = self._lock
        if owns(lock):  # from a host function, inside the call
            request_stop(self._address, "interrupt")
            return True
        if lock.acquire(False):
            lock.release()
            return False
        request_stop(self._address, "interrupt")
        if lock.acquire(timeout=1.0):  # the call is over: the request must not outlive it
            clear_stop(self._address)
            lock.release()
        return True

    async def drain(self) -> None:
        """Wait until the calls already sent to worker threads have finished."""
        while self._in_flight:
            await asyncio.sleep(0.001)

    def read_back(self, value: Any, returns: Any) -> Any:
        """A returned i32 pointer read as ``returns``: str, bytes, a layout or a gene class."""
        memory = self.memory
        if memory is None:
            raise NoMemoryError(f"Spirit {self.name!r} exports no memory to read a result from")
        ptr = int(value) & 0xFFFFFFFF
        if returns is str:
            return memory.read_string(ptr)
        if returns is bytes:
            return memory.read_bytes_prefixed(ptr)
        if isinstance(returns, GeneLayout):
            return memory.read_gene(ptr, returns)
        layout = getattr(returns, "__vudo_layout__", None)
        if isinstance(layout, GeneLayout):
            fields = memory.read_gene(ptr, layout)
            maker = getattr(returns, "from_gene", None)
            return maker(fields) if maker is not None else returns(**fields)
        raise TypeError(
            f"returns= must be str, bytes, a GeneLayout or a gene class, not {returns!r}"
        )

    def _run_threaded(
        self,
        export: _Export,
        args: tuple[Any, ...],
        timeout: float | None,
        loop: asyncio.AbstractEventLoop,
        cancelled: threading.Event,
    ) -> Any:
        with self._lock:
            if cancelled.is_set():
                return None  # nobody awaits the result any more
            if self._closed:  # closed (released, restarted) while this call waited
                raise self._closed_error()
            if self._bindings is not None:
                self._bindings.context.loop = loop
            with self._ctl:
                clear_stop(self._address)  # a request that came after the last call ended
                self._running = cancelled
            start = perf_counter()
            try:
                return self._run(export, args, timeout)
            finally:
                export.slow = perf_counter() - start > THREAD_THRESHOLD / 2
                with self._ctl:
                    self._running = None
                    clear_stop(self._address)

    def _run(self, export: _Export, args: tuple[Any, ...], timeout: float | None) -> Any:
        """One call with the lock held: deadline, fuel, error mapping."""
        if self._closed:  # its instance may serve another Spirit by now
            raise self._closed_error()
        if self._plain and timeout is None:
            try:
                return export.invoke(*args)
            except (wasmtime.Trap, wasmtime.WasmtimeError, TypeError) as exc:
                raise self._call_error(export, args, exc, None) from self._host_cause(exc)
        limit = self.timeout if timeout is None else timeout
        # A call made from inside another (a host function calling back into the Spirit)
        # keeps the outer call's deadline and shares its fuel budget.
        outer = begin_call(self._address, limit)
        try:
            if self.fuel is not None and outer is None:
                self._store.set_fuel(self.fuel)
            return export.invoke(*args)
        except (wasmtime.Trap, wasmtime.WasmtimeError, TypeError) as exc:
            raise self._call_error(export, args, exc, limit) from self._host_cause(exc)
        finally:
            end_call(self._address, outer)

    def _call_error(
        self, export: _Export, args: tuple[Any, ...], exc: Exception, limit: float | None
    ) -> BaseException:
        """Map what a failed call raised to the runtime's own errors."""
        if isinstance(exc, wasmtime.Trap | wasmtime.WasmtimeError):
            return self._trap_error(export.name, exc, limit)
        if len(args) != len(export.signature.params):
            return ArgumentError(
                f"Spirit {self.name!r} function {export.name!r} takes "
                f"{len(export.signature.params)} argument(s) {export.signature}, got {len(args)}"
            )
        return exc

    def _host_cause(self, exc: Exception) -> BaseException | None:
        if self._bindings is not None:
            cause = self._bindings.take_error()
            if isinstance(cause, KeyboardInterrupt | SystemExit):
                raise cause  # an interrupt is not the Spirit's failure
            if cause is not None:
                return cause
        return None if isinstance(exc, wasmtime.Trap | wasmtime.WasmtimeError | TypeError) else exc

    def _trap_error(
        self, fn: str, exc: wasmtime.Trap | wasmtime.WasmtimeError, limit: float | None
    ) -> BaseException:
        self._inst.clean = False  # what a trap left behind is not reset away safely
        if isinstance(exc, wasmtime.ExitTrap):
            return SpiritExit(exc.code, spirit=self.name, function=fn)
        reason = take_stop(self._address)
        if reason is not None:
            return self._stop_error(fn, reason, limit)
        code, frames = None, ""
        if isinstance(exc, wasmtime.Trap):
            code = exc.trap_code
            frames = "\n".join(
                f"  {i}: {f.func_name or f'func[{f.func_index}]'} @ 0x{f.module_offset:x}"
                for i, f in enumerate(exc.frames)
            )
            message = trap_reason(exc.message)
        else:  # a host function's trap arrives as an error carrying its text
            message = trap_reason(str(exc))
        if self._bindings is not None and (guest := self._bindings.take_message()):
            message = guest
        kw: dict[str, Any] = {"spirit": self.name, "function": fn, "backtrace": frames}
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return FuelExhausted(
                f"ran out of fuel (budget {self.fuel} per call); raise fuel= to allow more work",
                code="out_of_fuel",
                **kw,
            )
        return SpiritTrap(message, code=code.name.lower() if code else None, **kw)

    def _stop_error(self, fn: str, reason: str, limit: float | None) -> BaseException:
        """The error for a call its epoch callback stopped, by the reason it was stopped."""
        if reason == "sigint":
            return KeyboardInterrupt()
        if reason == "cancelled":
            return asyncio.CancelledError(f"call {self.name}.{fn} was cancelled")
        kw: dict[str, Any] = {"spirit": self.name, "function": fn}
        if reason == "timeout":
            return SpiritTimeout(
                f"timed out after {limit}s (epoch deadline); raise timeout= if the work is "
                "legitimately long",
                code="interrupt",
                **kw,
            )
        if reason == "stall":
            return SpiritTimeout(
                f"ran inline on the event loop thread and kept a due timer waiting over "
                f"{LOOP_STALL}s, so it was stopped; call it with mode='thread' (auto mode "
                "now runs it on a worker thread)",
                code="interrupt",
                **kw,
            )
        return SpiritInterrupted(
            "interrupted by Spirit.interrupt()",
            code="interrupt",
            **kw,
        )

    def _convert(self, fn: str) -> _native.Converter:
        """The slow-path argument converter for ``fn``: the clear errors live here."""
        me = weakref.proxy(self)  # held by the fast caller: no cycle back to the Spirit

        def convert(pos: int, ty: str, value: Any, temps: list[int]) -> Any:
            where = f"Spirit {me.name!r} function {fn!r} argument {pos + 1} ({ty})"
            if ty in ("i32", "i64"):
                if isinstance(value, str | bytes) and ty == "i32":
                    ptr = me._guest_string(value, where)
                    temps.append(ptr)
                    return ptr
                if isinstance(value, float) or not hasattr(value, "__index__"):
                    raise ArgumentError(
                        f"{where} expects an int, got {type(value).__name__} {value!r}"
                    )
                v = operator.index(value)
                lo, hi = (
                    (_native.I32_MIN, _native.I32_MAX)
                    if ty == "i32"
                    else (_native.I64_MIN, _native.I64_MAX)
                )
                if not lo <= v <= hi:
                    raise ArgumentError(f"{where}: {v} is out of range; {ty} accepts {lo}..{hi}")
                return v
            # What float() takes by protocol (as the fast path's struct packing does).
            if hasattr(type(value), "__float__") or hasattr(type(value), "__index__"):
                try:
                    return float(value)
                except OverflowError:
                    raise ArgumentError(f"{where}: {value} is too large for {ty}") from None
                except ValueError as exc:  # e.g. Decimal("sNaN")
                    raise ArgumentError(f"{where}: {value!r} is not a float: {exc}") from None
            raise ArgumentError(f"{where} expects a float, got {type(value).__name__} {value!r}")

        return convert

    def _release(self, temps: list[int]) -> None:
        """Free the strings written for one call's arguments, once the call is over."""
        memory = self._memory
        if memory is None:
            return
        for ptr in temps:
            # the call may have freed or reset it; a trap in the guest's free still counts
            with contextlib.suppress(MemoryAccessError):
                memory.free(ptr)

    def _guest_string(self, value: str | bytes, where: str) -> int:
        """A str argument becomes a fresh DOL length-prefixed string in guest memory."""
        if self.memory is None:
            raise ArgumentError(
                f"{where}: cannot pass {type(value).__name__}; the Spirit exports no memory"
            )
        if isinstance(value, str):
            return self.memory.write_string(value)
        return self.memory.write_bytes_prefixed(value)

    def _make_invoke(
        self, name: str, func: wasmtime.Func, sig: Signature, unchecked: bool
    ) -> Callable[..., Any]:
        # The caller's hooks hold this Spirit weakly: a Spirit and its callers form no
        # reference cycle, so a dropped Spirit is freed at once, not at the next GC.
        me = weakref.proxy(self)
        if set(sig.params) | set(sig.results) <= _native.SUPPORTED:

            def arity(given: int) -> NoReturn:
                raise ArgumentError(
                    f"Spirit {me.name!r} function {name!r} takes {len(sig.params)} "
                    f"argument(s) {sig}, got {given}"
                )

            def release(temps: list[int]) -> None:
                me._release(temps)

            return _native.build_caller(
                self._store,
                func,
                sig.params,
                sig.results,
                self._convert(name),
                arity,
                release,
                unchecked=unchecked,
            )

        def unsupported(*args: Any) -> Any:
            raise ArgumentError(
                f"Spirit {me.name!r} function {name!r} has signature {sig}; only i32, i64, "
                "f32 and f64 values can cross the host boundary"
            )

        return unsupported

    def _make_memory(self, raw: wasmtime.Memory) -> MemoryManager:
        alloc, free = self._guest_allocator()
        return MemoryManager(self._store, raw, guest_alloc=alloc, guest_free=free, spirit=self.name)

    def _guest_allocator(
        self,
    ) -> tuple[Callable[[int, int], int] | None, Callable[[int, int, int], None] | None]:
        """Adapt an exported allocator (``alloc``, ``malloc``, ``__wbindgen_malloc``), if any."""
        alloc_fn: Callable[[int, int], int] | None = None
        free_fn: Callable[[int, int, int], None] | None = None
        sigs = self._info.signatures
        # Called through _run, as calls are: bounded by the Spirit's timeout and fuel when
        # the host allocates outside a call, by the running call's deadline inside one.
        me = weakref.proxy(self)  # no cycle through the MemoryManager either

        def run(export: _Export, args: tuple[Any, ...], timeout: float | None) -> Any:
            return me._run(export, args, timeout)

        for cand in ("alloc", "malloc", "__wbindgen_malloc"):
            if cand not in sigs or sigs[cand].results != ("i32",) or len(sigs[cand].params) > 2:
                continue
            e = self._export(cand)
            alloc_fn = (
                (lambda size, align, e=e: run(e, (size, align), None))
                if len(e.signature.params) == 2
                else (lambda size, align, e=e: run(e, (size,), None))
            )
            break
        for cand in ("free", "__wbindgen_free", "dealloc"):
            if alloc_fn is None or cand not in sigs or sigs[cand].results:
                continue
            e = self._export(cand)
            n = len(e.signature.params)
            if 1 <= n <= 3:
                free_fn = lambda ptr, size, align, e=e, n=n: run(e, (ptr, size, align)[:n], None)  # noqa: E731
                break
        return alloc_fn, free_fn

    # ---- facades and lifetime ------------------------------------------------------------

    def as_(self, facade: type[T]) -> T:
        """A typed facade: a generated stub class, or any Protocol of async methods.

        For a Protocol each public method name is an export name; ``Gene__method`` stands
        for the export ``Gene.method``.
        """
        if getattr(facade, "__vudo_facade__", False):
            return facade(self)  # type: ignore[call-arg]
        return protocol_facade(self, facade)  # type: ignore[return-value]

    def close(self) -> None:
        """Release the instance once the call running now (if any) has finished; later
        calls raise a clear error. Call :meth:`interrupt` first to stop that call.

        The instance goes back to its manager, which resets it for another Spirit or
        discards it; nothing of this Spirit's state is visible there.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._funcs.clear()
            memory, self._memory = self._memory, None
            inst = self._inst
            if memory is not None:
                if memory.exposed:  # a view handed out would see the next user's memory
                    inst.clean = False
                memory.close()  # later memory access raises; old views stay safe
            if inst.manager is not None:
                inst.manager.release(inst)
            elif self._bindings is not None:
                self._bindings.detach()

    def __enter__(self) -> Spirit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Spirit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._info.signatures)} functions"
        return f"<Spirit {self.name!r} {state}>"


# The manager each (source, grant, limits) loaded before resolved to: a load of a known
# Spirit skips reading, hashing, compiling and linking lookups.
_recipes: dict[tuple[Any, ...], InstanceManager] = {}


def _recipe_key(source: Source, opts: SpiritOptions) -> tuple[Any, ...] | None:
    src = source_key(source)
    if src is None or opts.trust is not None:  # (manifests never get here: see callers)
        return None
    registry = opts.registry or default_registry()
    loas = opts.loas
    if isinstance(loas, list):
        loas = tuple(loas)
    version = loas.version if isinstance(loas, LoaRegistry) else registry.version
    # Another cache directory asks for an entry there; a cleared cache for a fresh start.
    engine = (opts.fuel is not None, opts.compact)
    limit, cache = opts.max_memory, opts.cache
    return (src, loas, registry, version, engine, limit, opts.unchecked, cache, generation())


def _lookup(source: Source, opts: SpiritOptions) -> tuple[InstanceManager | None, Any]:
    """The manager a load like this one resolved to before, and the key to file it under
    (None when the options cannot be a key: ``loas=`` given as a set or a generator)."""
    key = _recipe_key(source, opts)
    if key is None:
        return None, None
    try:
        return _recipes.get(key), key
    except TypeError:
        return None, None


def _manager(source: Source, opts: SpiritOptions) -> InstanceManager:
    """The instance manager a load of ``source`` with ``opts`` draws from."""
    wasm, spirit_name, label = read_source(source, opts.name)
    if opts.trust is not None:  # before any compiling: unverified code never reaches it
        verify(wasm, opts.trust, source=label)
    grant, registry = resolve_grant(opts.loas, opts.registry)
    # An open InstancePool of this module serves loads too (unchecked=False gets none:
    # pooled instances use the fast path).
    if opts.unchecked and (pooled := shared_manager(wasm, opts.fuel, opts.max_memory, grant)):
        return pooled
    settings = opts.engine
    module = compile_module(wasm, settings, cache=opts.cache, source=label)
    return manager_for(
        module,
        settings,
        spirit_name,
        grant,
        registry,
        unchecked=opts.unchecked,
        max_memory=opts.max_memory,
    )


def is_manifest(source: Source) -> TypeGuard[str | os.PathLike[str]]:
    """A path to a spirit.toml manifest (loaded as the module it names, with its grants)."""
    return isinstance(source, str | os.PathLike) and os.fspath(source).endswith(".toml")


def _from_manifest(
    path: str | os.PathLike[str], opts: SpiritOptions
) -> tuple[bytes, SpiritOptions, Manifest]:
    """The module a manifest names (its hash checked, its signature verified when ``trust``
    is set) and the options it asks for, narrowed by the host: ``policy`` and any limit
    or grant given to the load itself can only make them stricter."""
    manifest = load_manifest(path)
    if opts.policy is not None:
        manifest = manifest.narrowed(opts.policy)
    wasm = manifest.read_source()
    if opts.trust is not None:
        verify(wasm, opts.trust, manifest.raw, source=str(manifest.source))
    loas: tuple[str, ...] = manifest.loas
    if opts.loas is not None:  # the host's own grant: only what both allow
        asked = {x if isinstance(x, str) else x.name for x in resolve_grant(opts.loas)[0]}
        loas = tuple(x for x in loas if x in asked)
    limits = manifest.limits
    host = opts.wasi or WasiOptions()
    wasi = WasiOptions(
        args=(*manifest.wasi.args, *host.args),
        env=(*manifest.wasi.env.items(), *host.env),
        dirs=[Preopen(d.host, d.guest, readonly=not d.writable) for d in manifest.wasi.dirs],
        stdin=host.stdin,
        stdout=host.stdout,
        stderr=host.stderr,
    )
    narrowed = attrs.evolve(
        opts,
        name=opts.name or manifest.name,
        loas=loas,
        timeout=_stricter(opts.timeout, limits.timeout),
        fuel=_stricter(opts.fuel, limits.fuel),
        max_memory=_stricter(opts.max_memory, limits.max_memory),
        wasi=wasi,
        trust=None,  # verified here, with the manifest
    )
    return wasm, narrowed, manifest


def _stricter(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def ready_manager(source: Source, opts: SpiritOptions) -> InstanceManager | None:
    """The manager a load of ``source`` draws from, when that load is cheap enough for the
    event loop thread: no file to read, nothing to compile, no start function to run."""
    if pools_open() or is_manifest(source):
        return None
    manager, _ = _lookup(source, opts)
    if manager is not None and not manager.closed and (manager.idle or not manager.has_start):
        return manager
    return None


async def load_spirit(
    source: Source,
    *,
    options: SpiritOptions | None = None,
    name: str | None = None,
    loas: LoaGrant = None,
    cache: CacheOption = True,
    timeout: float | None = None,
    fuel: int | None = None,
    max_memory: int | None = None,
    mode: CallMode = "auto",
    stdout: Any = None,
    on_effect: Callable[..., Any] | None = None,
    seance: Any = None,
    registry: LoaRegistry | None = None,
    unchecked: bool = True,
    wasi: WasiOptions | None = None,
    compact: bool = False,
    trust: TrustPolicy | None = None,
    policy: HostPolicy | None = None,
) -> Spirit:
    """Load a Spirit from a path, bytes (wasm or WAT) or PathLike.

    The keywords are the fields of :class:`SpiritOptions` (see there); ``options=`` gives
    them as one object, and keywords not left at their defaults override it: ``name``,
    ``loas`` (a LoaRegistry, or Loa names / Loa objects to grant; default ``core``),
    ``cache`` (True, False or a directory), ``timeout`` (seconds per call), ``fuel`` (budget
    per call), ``max_memory`` (bytes), ``mode`` (``auto``/``inline``/``thread``), ``stdout``
    (file or callable for vudo_print), ``on_effect`` (callback for effects), ...
    """
    return await Spirit._load(source, SpiritOptions.of(options, locals()))
