"""InstancePool: pre-instantiated instances of one module, bounded, for async hosts.

Imports are resolved once (``InstancePre``), instance slots come from wasmtime's pooling
allocator with copy-on-write memory images, and warm instances are refilled on a worker
thread, off the hot path. A used instance is discarded, never scrubbed and reused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

import attrs

from vudo_runtime.cache import CacheOption, compile_module, wasm_digest
from vudo_runtime.engine import HAVE_POOLING, EngineSettings
from vudo_runtime.errors import PoolTimeout, SpiritLoadError, VudoError
from vudo_runtime.loa import HostBindings, LinkPlan, Loa, LoaRegistry, link, resolve_grant
from vudo_runtime.module import Source, read_source
from vudo_runtime.options import CallMode, SpiritOptions
from vudo_runtime.spirit import Spirit, _worker_pool

PoolKey = tuple[bytes, bool, int | None, frozenset[Loa]]

_shared: dict[PoolKey, InstancePool] = {}
_shared_lock = threading.Lock()


def pool_key(
    wasm: bytes, fuel: int | None, max_memory: int | None, grant: Iterable[Loa]
) -> PoolKey:
    """Instances are interchangeable when module, fuel metering, memory cap and Loas match."""
    return (wasm_digest(wasm), fuel is not None, max_memory, frozenset(grant))


def shared_pool(key: PoolKey) -> InstancePool | None:
    """The process-wide pool for a module, when one is open."""
    return _shared.get(key)


@attrs.frozen
class PoolStats:
    size: int
    created: int
    in_use: int
    idle: int
    waited: int
    allocator: str


class InstancePool:
    """``size`` instances of one Spirit at most in use at once; acquire waits for a free one.

    ``async with InstancePool("spirits/counter.wasm", size=8) as pool:`` then
    ``async with pool.acquire() as spirit`` or ``await pool.invoke(fn, *args)``.
    """

    def __init__(
        self,
        source: Source,
        *,
        size: int = 4,
        warm: int | None = None,
        name: str | None = None,
        loas: Any = None,
        registry: LoaRegistry | None = None,
        cache: CacheOption = True,
        timeout: float | None = None,
        fuel: int | None = None,
        max_memory: int | None = None,
        mode: CallMode = "auto",
        acquire_timeout: float | None = None,
        shared: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        SpiritOptions.of(None, locals())  # validates timeout, fuel and mode as load_spirit does
        self.size = size
        self.warm = size if warm is None else max(0, min(warm, size))
        self.acquire_timeout = acquire_timeout
        self._opts: dict[str, Any] = {"timeout": timeout, "fuel": fuel, "mode": mode}
        self._max_memory = max_memory
        wasm, self.name, label = read_source(source, name)
        self._settings = EngineSettings(fuel=fuel is not None, pooling=True)
        module = compile_module(wasm, self._settings, cache=cache, source=label)
        granted, _ = resolve_grant(loas, registry)
        self._pre, bindings = link(module, self._settings, self.name, granted, registry=registry)
        self._plan: LinkPlan = bindings.plan
        self._module = module
        self.key = pool_key(wasm, fuel, max_memory, granted)
        self._idle: collections.deque[Spirit] = collections.deque()
        self._in_use = 0
        self._created = 0
        self._waited = 0
        self._closed = False
        self._refilling = False
        self._lock = threading.Lock()
        self._sem: asyncio.Semaphore | None = None
        self._shared = shared
        if shared:
            with _shared_lock:
                _shared.setdefault(self.key, self)

    # ---- instances ---------------------------------------------------------------------

    def _new(self, name: str | None = None, **bind: Any) -> Spirit:
        bindings = HostBindings(self._plan, name or self.name, **bind)
        try:
            spirit = Spirit.instantiate(
                self._module,
                self._pre,
                bindings,
                settings=self._settings,
                name=name or self.name,
                max_memory=self._max_memory,
                **self._opts,
            )
        except SpiritLoadError as exc:
            if "pooling" in str(exc.__cause__ or ""):
                raise SpiritLoadError(
                    f"{exc}\nThe pooling allocator's slots are exhausted: close unused Spirits "
                    "or pools"
                ) from exc
            raise
        with self._lock:
            self._created += 1
        return spirit

    def _refill(self) -> None:
        try:
            while not self._closed and len(self._idle) < self.warm:
                spirit = self._new()
                self._idle.append(spirit)
                if self._closed:  # close() ran while this instance was being made
                    self.close()
        finally:
            self._refilling = False

    def _schedule_refill(self) -> None:
        if self._closed or self._refilling or len(self._idle) >= self.warm:
            return
        self._refilling = True
        _worker_pool().submit(self._refill)

    def _take(self, name: str | None = None, **bind: Any) -> Spirit:
        """A fresh instance: a warm one when there is one, else instantiated now."""
        if self._closed:
            raise VudoError(f"the pool of {self.name!r} is closed")
        try:
            spirit = self._idle.popleft()
        except IndexError:
            spirit = self._new(name, **bind)
        else:
            if name is not None:
                spirit.name = name
            bindings = spirit._bindings
            if bindings is not None:
                bindings.name = spirit.name
                for key, value in bind.items():
                    setattr(bindings, key, value)
        self._schedule_refill()
        return spirit

    def take_sync(self, name: str | None = None, **bind: Any) -> Spirit:
        """Hand a fresh instance over to the caller for good (load_spirit and summon)."""
        return self._take(name, **bind)

    def start_sync(self) -> InstancePool:
        """Fill the warm instances now (``async with`` does this off the event loop)."""
        self._refilling = True
        self._refill()
        return self

    # ---- async use ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[Spirit]:
        """Borrow an instance; waits while ``size`` are in use. Discarded on release."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.size)
        sem = self._sem
        limit = self.acquire_timeout if timeout is None else timeout
        if sem.locked():
            self._waited += 1
        try:
            async with asyncio.timeout(limit):
                await sem.acquire()
        except TimeoutError:
            raise PoolTimeout(
                f"no instance of {self.name!r} became free within {limit}s "
                f"({self.size} in use); raise size= or acquire_timeout="
            ) from None
        try:
            spirit = self._take()
        except BaseException:
            sem.release()
            raise
        self._in_use += 1
        try:
            yield spirit
        finally:
            self._in_use -= 1
            spirit.close()
            sem.release()

    async def invoke(
        self, fn: str, *args: Any, timeout: float | None = None, mode: CallMode | None = None
    ) -> Any:
        """Call ``fn`` on a fresh instance (stateless use)."""
        async with self.acquire() as spirit:
            return await spirit.call(fn, *args, timeout=timeout, mode=mode)

    def stats(self) -> PoolStats:
        return PoolStats(
            size=self.size,
            created=self._created,
            in_use=self._in_use,
            idle=len(self._idle),
            waited=self._waited,
            allocator="pooling" if HAVE_POOLING else "on-demand",
        )

    async def start(self) -> InstancePool:
        await asyncio.get_running_loop().run_in_executor(_worker_pool(), self.start_sync)
        return self

    def close(self) -> None:
        self._closed = True
        if self._shared:
            with _shared_lock:
                if _shared.get(self.key) is self:
                    del _shared[self.key]
        while self._idle:
            self._idle.popleft().close()

    async def __aenter__(self) -> InstancePool:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        return f"<InstancePool {self.name!r} size={s.size} idle={s.idle} in_use={s.in_use}>"


def draw(
    wasm: bytes, fuel: int | None, max_memory: int | None, grant: Iterable[Loa], **take: Any
) -> Spirit | None:
    """A fresh instance from the process-wide pool of this module, if there is one."""
    if not _shared:
        return None
    pool = _shared.get(pool_key(wasm, fuel, max_memory, grant))
    return pool.take_sync(**take) if pool is not None else None
