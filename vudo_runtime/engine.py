"""The shared wasmtime engines (Cranelift, epoch interruption) and the epoch ticker.

Every engine call of the runtime goes through this module, :mod:`vudo_runtime.cache`
and :mod:`vudo_runtime._native`, so another engine could be added there alone.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import signal
import threading
import time
from asyncio import _get_running_loop as asyncio_running_loop
from importlib import metadata
from types import FrameType
from typing import Any

import attrs
import wasmtime

#: Epoch ticker period: the granularity of ``timeout=`` deadlines.
TICK_SECONDS = 0.005
#: Ticker period while no call has a deadline: the latency of Ctrl-C and the loop guard.
IDLE_TICK_SECONDS = 0.05

try:
    WASMTIME_VERSION = metadata.version("wasmtime")
except metadata.PackageNotFoundError:  # pragma: no cover - vendored copies
    WASMTIME_VERSION = "unknown"


@attrs.frozen
class EngineSettings:
    """What an engine is configured with; modules compiled under one fit only that one."""

    fuel: bool = False
    opt_level: str = "speed"
    #: wasmtime's pooling allocator: pre-reserved instance slots (used by InstancePool).
    pooling: bool = False
    #: Linear memories reserve only what they use: no 4 GiB reservation, so ~100,000 small
    #: Spirits fit in one process; memory accesses get explicit bounds checks.
    #:
    #: Each memory is then one read-write anonymous mapping of exactly its size, which the
    #: kernel merges with its neighbours, so 100,000 one-page memories take a few hundred
    #: of the process's ``vm.max_map_count`` (65,530) mappings instead of 3 each. Memory
    #: images (copy-on-write data segments) are off: a mapped image is a mapping of its
    #: own per instance, so data segments are copied in at instantiation. ``memory.grow``
    #: moves the memory (a new mapping and a copy) each time. Memories freed in random
    #: order leave holes, up to one mapping per live memory (100,000 made, a random half
    #: freed: ~25,000); wasmtime aborts the process when a free or a thread's first call
    #: finds no mapping left. Not combinable with ``pooling`` (get_engine raises).
    compact: bool = False

    @property
    def key(self) -> str:
        """A stable string naming these settings, for cache keys."""
        return (
            f"wasmtime-{WASMTIME_VERSION};epoch;fuel={int(self.fuel)};opt={self.opt_level}"
            f";pooling={int(self.pooling and HAVE_POOLING)}"
            # Only when set, so that the default engine's cache entries stay valid.
            + (";compact=1" if self.compact else "")
        )


_engines: dict[EngineSettings, wasmtime.Engine] = {}
_engines_lock = threading.Lock()


def get_engine(settings: EngineSettings = EngineSettings()) -> wasmtime.Engine:
    """The process-wide engine for ``settings`` (fuel metering needs its own engine)."""
    engine = _engines.get(settings)
    if engine is None:
        if settings.compact and settings.pooling:
            # The pooling allocator needs a reservation of at least a whole slot per memory
            # (wasmtime aborts the process, from Engine(), on a smaller one): the opposite
            # of compact, and its slots are few (POOL_INSTANCES) anyway.
            raise ValueError(
                "EngineSettings(compact=True, pooling=True): compact memories reserve no "
                "address space ahead, the pooling allocator reserves a fixed slot of "
                f"{POOL_MAX_MEMORY >> 20} MiB for each of its {POOL_INSTANCES} instances; "
                "choose one"
            )
        with _engines_lock:
            engine = _engines.get(settings)
            if engine is None:
                config = wasmtime.Config()
                config.strategy = "cranelift"
                config.cranelift_opt_level = settings.opt_level
                config.epoch_interruption = True
                config.consume_fuel = settings.fuel
                if settings.compact:
                    # One RW mapping of exactly the memory's size, with no PROT_NONE
                    # reservation or guard beside it, so that neighbours merge; a memory
                    # image would add a file mapping per instance, which never merges.
                    config.memory_reservation = 0
                    config.memory_guard_size = 0
                    config.memory_reservation_for_growth = 0
                    config.memory_may_move = True  # memory.grow must move the memory
                    config.memory_init_cow = False
                    # signals_based_traps stays on: off, wasmtime would put memories on
                    # the malloc heap, zeroed and resident from the start (64 KiB each),
                    # and Spectre-hardened bounds checks would have to go.
                if settings.pooling and HAVE_POOLING:
                    _enable_pooling(config)
                engine = wasmtime.Engine(config)
                _engines[settings] = engine
    return engine


#: Elements one table may hold (about 8 MiB). Tables have no other bound: without one a
#: single ``table.grow`` makes the host allocate up to 32 GiB, whatever ``max_memory`` says.
MAX_TABLE_ELEMENTS = 1 << 20

#: Slots of the pooling allocator, shared by every pooled instance of the process.
POOL_INSTANCES = 1000
POOL_MAX_MEMORY = 256 << 20  # bytes per linear memory slot (DOL Spirits use <= 16 MiB)

try:
    from wasmtime import _bindings as _b

    HAVE_POOLING = hasattr(_b, "wasmtime_pooling_allocation_strategy_set")
except ImportError:  # pragma: no cover
    HAVE_POOLING = False


def _enable_pooling(config: wasmtime.Config) -> None:
    """Switch ``config`` to the pooling allocator (copy-on-write memory images stay on)."""
    pooling = _b.wasmtime_pooling_allocation_config_new()
    try:
        _b.wasmtime_pooling_allocation_config_total_core_instances_set(pooling, POOL_INSTANCES)
        _b.wasmtime_pooling_allocation_config_total_memories_set(pooling, POOL_INSTANCES)
        _b.wasmtime_pooling_allocation_config_total_tables_set(pooling, POOL_INSTANCES)
        _b.wasmtime_pooling_allocation_config_max_memory_size_set(pooling, POOL_MAX_MEMORY)
        _b.wasmtime_pooling_allocation_strategy_set(config.ptr(), pooling)
    finally:
        _b.wasmtime_pooling_allocation_config_delete(pooling)


class _Ticker:
    """One daemon thread that advances every engine's epoch.

    Each ``TICK_SECONDS`` while a call has a deadline; otherwise each ``IDLE_TICK_SECONDS``,
    often enough for Ctrl-C and the event-loop guard, rarely enough that its wake-ups
    (each takes the GIL) cost the fast call path almost nothing.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.wake = threading.Event()  # a deadline began: switch to fine ticks now

    def ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="vudo-epoch-ticker", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            timed = math.inf != min(list(_call_ends.values()), default=math.inf)
            if not timed and self.wake.wait(IDLE_TICK_SECONDS):
                self.wake.clear()
            elif timed:
                time.sleep(TICK_SECONDS)
            for engine in list(_engines.values()):
                engine.increment_epoch()


_ticker = _Ticker()


def check_timeout(timeout: float) -> None:
    """ValueError unless ``timeout`` is a positive number of seconds (inf: no deadline)."""
    if not timeout > 0:  # also rejects NaN
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


# When the call running in a Store must end (time.monotonic(); inf: never), by the Store's
# context address. A call made while another runs in the same Store (a host function
# calling back into its Spirit) keeps the outer deadline, and host functions that wait
# (vudo_sleep) stop waiting at it.
_call_ends: dict[int, float] = {}

# Why the call running in a Store must stop now, by address: set by interrupt(), by a
# cancelled await, or by the epoch callback itself; read back by take_stop().
_stops: dict[int, str] = {}
# Why the epoch callback stopped the last call in a Store, until take_stop() reads it.
_stopped: dict[int, str] = {}

#: An inline call is stopped when it keeps one of its event loop's timers waiting this
#: long (asyncio's own slow-callback limit): the loop must not freeze behind a guest.
LOOP_STALL = 0.1

_sigint = False  # a Ctrl-C arrived while a guest ran on the main thread


def begin_call(address: int, timeout: float | None) -> float | None:
    """Enter a call in the Store at ``address``, bounded by ``timeout`` seconds and by the
    deadline of the call it runs inside; returns that outer call's end (None: not nested)."""
    outer = _call_ends.get(address)
    if timeout is None:
        _call_ends[address] = math.inf if outer is None else outer
        return outer
    check_timeout(timeout)
    end = time.monotonic() + timeout
    _call_ends[address] = end if outer is None or end < outer else outer
    _ticker.wake.set()
    return outer


def end_call(address: int, outer: float | None) -> None:
    """Leave a call entered with begin_call: the outer call's deadline holds again."""
    if outer is None:
        _call_ends.pop(address, None)
    else:
        _call_ends[address] = outer


def request_stop(address: int, reason: str) -> None:
    """Ask the call running in the Store at ``address`` to stop at its next epoch check
    (within one tick). Thread-safe: the guest polls the flag from its epoch callback."""
    _stops[address] = reason
    _ticker.ensure_running()
    for engine in list(_engines.values()):
        engine.increment_epoch()  # reaches the guest's next check now, not a tick later


def clear_stop(address: int) -> None:
    """Forget any stop of the Store at ``address``: asked for, or made and not yet read
    (a reused instance must not inherit its last user's)."""
    _stops.pop(address, None)
    _stopped.pop(address, None)


def take_stop(address: int) -> str | None:
    """Why the epoch callback stopped the last call in this Store (None: it did not)."""
    return _stopped.pop(address, None)


def _stop_reason(address: int) -> str | None:
    """What the epoch callback decides, once per tick while a guest runs."""
    global _sigint
    reason = _stops.pop(address, None)
    if reason is not None:
        return reason
    end = _call_ends.get(address)
    if end is not None and end != math.inf and time.monotonic() >= end:
        return "timeout"
    loop = asyncio_running_loop()
    if threading.current_thread() is threading.main_thread():
        if _sigint:
            _sigint = False
            return "sigint"
        if loop is None:
            watch_sigint()
    if loop is not None:  # an inline call: the guest runs on the event loop's thread
        task = asyncio.current_task(loop)
        if task is not None and task.cancelling():
            return "cancelled"
        timers = getattr(loop, "_scheduled", None)
        if timers and loop.time() - timers[0].when() > LOOP_STALL:
            return "stall"
    return None


def _on_epoch(context: int, data: int | None, delta: Any, kind: Any) -> int:
    """wasmtime's epoch-deadline callback: keep going one more tick, or stop the guest."""
    try:
        reason = _stop_reason(data or 0)
    except BaseException:  # never let an exception escape a ctypes callback
        reason = "interrupt"
    if reason is None:
        delta[0] = 1
        kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
        return 0
    _stopped[data or 0] = reason
    message = f"vudo: call stopped ({reason})".encode()
    return ctypes.cast(_b.wasmtime_error_new(message), ctypes.c_void_p).value or 0


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: inside a guest on the main thread, stop the guest; elsewhere, as Python does.

    Python runs signal handlers between bytecodes, so during a wasm call it runs this one
    at the start of the epoch callback; raising there would be lost in the callback.
    """
    global _sigint
    if frame is not None and frame.f_code is _on_epoch.__code__:
        _sigint = True
        return
    raise KeyboardInterrupt


def watch_sigint() -> None:
    """On the main thread outside asyncio, let Ctrl-C stop a guest (see _on_sigint).

    Called when a Store is made and at a guest's epoch checks, not at import: a guest may
    block in a host call (a WASI read) before its first check, and Python's default
    handler would then raise inside the epoch callback, where nothing can catch it. Not
    earlier: ``asyncio.run`` installs its own handler only over the default one.
    """
    if (
        threading.current_thread() is threading.main_thread()
        and asyncio_running_loop() is None
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, _on_sigint)


def watch_store(store: wasmtime.Store, address: int) -> None:
    """Give ``store`` the epoch callback that polls for stops, timeouts and Ctrl-C."""
    watch_sigint()
    _ticker.ensure_running()
    _stops.pop(address, None)  # a new Store may reuse a freed one's address
    _stopped.pop(address, None)
    _EPOCH_SET(store.ptr(), _EPOCH_CALLBACK, ctypes.c_void_p(address), _NO_FINALIZER)
    store.set_epoch_deadline(1)


_EPOCH_CALLBACK: Any = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)(_on_epoch)
_NO_FINALIZER: Any = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()
# A function object of our own, without argtypes: wasmtime's would refuse our callback type.
_EPOCH_SET: Any = _b.dll._FuncPtr(("wasmtime_store_epoch_deadline_callback", _b.dll))  # type: ignore[attr-defined]
_EPOCH_SET.restype = None


def time_left(address: int) -> float | None:
    """Seconds before the call running in the Store at ``address`` must end (None: no
    deadline, or no call running)."""
    end = _call_ends.get(address)
    return None if end is None or end == math.inf else max(end - time.monotonic(), 0.0)
