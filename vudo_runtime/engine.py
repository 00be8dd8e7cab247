"""The shared wasmtime engines (Cranelift, epoch interruption) and the epoch ticker.

Every engine call of the runtime goes through this module, :mod:`vudo_runtime.cache`
and :mod:`vudo_runtime._native`, so another engine could be added there alone.
"""

from __future__ import annotations

import math
import threading
import time
from importlib import metadata

import attrs
import wasmtime

#: Epoch ticker period: the granularity of ``timeout=`` deadlines.
TICK_SECONDS = 0.005
#: A deadline that is never reached (ticks after the current epoch).
NO_DEADLINE = 1 << 62

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

    @property
    def key(self) -> str:
        """A stable string naming these settings, for cache keys."""
        return (
            f"wasmtime-{WASMTIME_VERSION};epoch;fuel={int(self.fuel)};opt={self.opt_level}"
            f";pooling={int(self.pooling and HAVE_POOLING)}"
        )


_engines: dict[EngineSettings, wasmtime.Engine] = {}
_engines_lock = threading.Lock()


def get_engine(settings: EngineSettings = EngineSettings()) -> wasmtime.Engine:
    """The process-wide engine for ``settings`` (fuel metering needs its own engine)."""
    engine = _engines.get(settings)
    if engine is None:
        with _engines_lock:
            engine = _engines.get(settings)
            if engine is None:
                config = wasmtime.Config()
                config.strategy = "cranelift"
                config.cranelift_opt_level = settings.opt_level
                config.epoch_interruption = True
                config.consume_fuel = settings.fuel
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
    """One daemon thread that advances every engine's epoch each ``TICK_SECONDS``."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="vudo-epoch-ticker", daemon=True)
                thread.start()
                self._thread = thread

    @staticmethod
    def _run() -> None:
        while True:
            time.sleep(TICK_SECONDS)
            for engine in list(_engines.values()):
                engine.increment_epoch()


_ticker = _Ticker()


def deadline_ticks(timeout: float) -> int:
    """Epoch ticks for ``timeout`` seconds, starting the ticker if it is not running."""
    if timeout == math.inf:
        return NO_DEADLINE
    if not timeout > 0:  # also rejects NaN
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    _ticker.ensure_running()
    # +1: the current tick may be about to end, so never cut a call short.
    return math.ceil(timeout / TICK_SECONDS) + 1


# When the call running in a Store must end (time.monotonic(); inf: never), by the Store's
# context address. A call made while another runs in the same Store (a host function
# calling back into its Spirit) keeps the outer deadline, and host functions that wait
# (vudo_sleep) stop waiting at it.
_call_ends: dict[int, float] = {}


def begin_call(store: wasmtime.Store, address: int, timeout: float | None) -> float | None:
    """Enter a call in ``store``, bounded by ``timeout`` seconds and by the deadline of the
    call it runs inside; returns that outer call's end (None: not nested), for end_call."""
    outer = _call_ends.get(address)
    if timeout is None:
        _call_ends[address] = math.inf if outer is None else outer
        return outer
    ticks = deadline_ticks(timeout)  # validates timeout
    now = time.monotonic()
    end = now + timeout
    if outer is not None and outer < end:
        end = outer
        ticks = _ticks_until(end, now)
    _call_ends[address] = end
    store.set_epoch_deadline(ticks)
    return outer


def end_call(store: wasmtime.Store, address: int, outer: float | None, bounded: bool) -> None:
    """Leave a call entered with begin_call: the outer call's deadline holds again."""
    if outer is None:
        _call_ends.pop(address, None)
        if bounded:
            store.set_epoch_deadline(NO_DEADLINE)
    else:
        _call_ends[address] = outer
        if bounded:
            store.set_epoch_deadline(_ticks_until(outer, time.monotonic()))


def _ticks_until(end: float, now: float) -> int:
    """Ticks from now to ``end``; at least one, so a passed deadline interrupts at once."""
    return NO_DEADLINE if end == math.inf else deadline_ticks(max(end - now, TICK_SECONDS / 2))


def time_left(address: int) -> float | None:
    """Seconds before the call running in the Store at ``address`` must end (None: no
    deadline, or no call running)."""
    end = _call_ends.get(address)
    return None if end is None or end == math.inf else max(end - time.monotonic(), 0.0)
