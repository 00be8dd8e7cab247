"""InstancePool: warm instances of one module, bounded, for async hosts.

A pool is an :class:`~vudo_runtime.instances.InstanceManager` of its own (instance slots
from wasmtime's pooling allocator, copy-on-write memory images) with a bound on the
instances in use. Warm instances are refilled on a worker thread, off the hot path; a
released instance is reset and reused when its module allows it, else discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import attrs

from vudo_runtime.cache import CacheOption, compile_module
from vudo_runtime.engine import HAVE_POOLING, EngineSettings
from vudo_runtime.errors import PoolTimeout, VudoError
from vudo_runtime.instances import InstanceManager, PoolKey, pool_key, share, unshare
from vudo_runtime.linking import link
from vudo_runtime.loa import HostContext
from vudo_runtime.module import Source, read_source
from vudo_runtime.options import CallMode, SpiritOptions
from vudo_runtime.registry import LoaRegistry, resolve_grant
from vudo_runtime.spirit import Spirit
from vudo_runtime.threads import worker_pool

_shared_pools: dict[PoolKey, InstancePool] = {}
_shared_lock = threading.Lock()


def shared_pool(key: PoolKey) -> InstancePool | None:
    """The process-wide pool for a module, when one is open."""
    return _shared_pools.get(key)


@attrs.frozen
class PoolStats:
    size: int
    created: int
    in_use: int
    idle: int
    waited: int
    allocator: str
    #: Instances reset on release and handed out again (``created`` counts fresh ones).
    reused: int = 0
    discarded: int = 0


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
        self._timeout, self._fuel, self._mode = timeout, fuel, mode
        wasm, self.name, label = read_source(source, name)
        settings = EngineSettings(fuel=fuel is not None, pooling=True)
        module = compile_module(wasm, settings, cache=cache, source=label)
        granted, registry = resolve_grant(loas, registry)
        plan, pre = link(module, settings, self.name, granted, registry)
        self._manager = InstanceManager(
            module,
            settings,
            plan,
            pre,
            max_memory=max_memory,
            keep=size + self.warm,
            warm=self.warm,
        )
        self.key = pool_key(wasm, fuel, max_memory, granted)
        self._in_use = 0
        self._waited = 0
        self._sem: asyncio.Semaphore | None = None
        self._shared = shared
        if shared:
            with _shared_lock:
                _shared_pools.setdefault(self.key, self)
            share(self.key, self._manager)

    # ---- instances ---------------------------------------------------------------------

    def _take(self, name: str | None = None) -> Spirit:
        """A Spirit on a warm instance when there is one, else on one instantiated now."""
        manager = self._manager
        if manager.closed:
            raise VudoError(f"the pool of {self.name!r} is closed")
        name = name or self.name
        instance = manager.acquire(HostContext(name), fuel=self._fuel, timeout=self._timeout)
        return Spirit(instance, name=name, timeout=self._timeout, fuel=self._fuel, mode=self._mode)

    def start_sync(self) -> InstancePool:
        """Fill the warm instances now (``async with`` does this off the event loop)."""
        self._manager.fill()
        return self

    # ---- async use ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[Spirit]:
        """Borrow an instance; waits while ``size`` are in use. Reset or discarded on release."""
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
        manager = self._manager
        return PoolStats(
            size=self.size,
            created=manager.created,
            in_use=self._in_use,
            idle=manager.idle,
            waited=self._waited,
            allocator="pooling" if HAVE_POOLING else "on-demand",
            reused=manager.reused,
            discarded=manager.discarded,
        )

    async def start(self) -> InstancePool:
        await asyncio.get_running_loop().run_in_executor(worker_pool(), self.start_sync)
        return self

    def close(self) -> None:
        """Discard the idle instances; Spirits handed out keep theirs until they close."""
        if self._shared:
            with _shared_lock:
                if _shared_pools.get(self.key) is self:
                    del _shared_pools[self.key]
            unshare(self.key, self._manager)
        self._manager.close()

    async def __aenter__(self) -> InstancePool:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        return f"<InstancePool {self.name!r} size={s.size} idle={s.idle} in_use={s.in_use}>"
