"""Séance: a session of several Spirits, their lifetimes and their messages; Ghost.

``async with Seance() as s`` dismisses every Spirit on exit, even on error. Each summoned
Spirit is granted ``core``, ``messaging`` and ``state`` by default, so Spirits of one
Séance can message each other and share a key-value store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from time import perf_counter
from typing import Any, Literal

import attrs
import wasmtime

from vudo_runtime.cache import CacheOption, compile_module
from vudo_runtime.cache import generation as current_generation
from vudo_runtime.engine import EngineSettings
from vudo_runtime.errors import SeanceError, SpiritLoadError, SpiritTimeout, SpiritTrap, VudoError
from vudo_runtime.instances import Instance, InstanceManager, pools_open
from vudo_runtime.linking import plan_link
from vudo_runtime.loa import HostContext
from vudo_runtime.loas.messaging import DEFAULT_QUEUE_LIMIT, Message, MessageBus
from vudo_runtime.loas.state import SharedState, StateBackend
from vudo_runtime.loas.wasi import WasiOptions
from vudo_runtime.manifest import HostPolicy
from vudo_runtime.metrics import Recorder, SpiritStats, span
from vudo_runtime.metrics import tracing as _tracing
from vudo_runtime.module import Source, known_wasm, read_source
from vudo_runtime.options import CallMode, SpiritOptions
from vudo_runtime.registry import LoaGrant, LoaRegistry, default_registry, resolve_grant
from vudo_runtime.signing import TrustPolicy
from vudo_runtime.spirit import Spirit, ready_manager
from vudo_runtime.threads import worker_pool

#: Granted to summoned Spirits when ``loas=`` is not given.
SEANCE_GRANT = ("core", "messaging", "state")

Restart = Literal["never", "on-trap"]

_DEFAULTS = SpiritOptions()


@attrs.frozen
class Ghost:
    """A composition of Spirits summoned as one unit.

    ``parts`` are summoned in order, each as ``"<ghost>.<part>"``; ``links[part]`` maps an
    import module name of that part to an earlier part whose exports meet those imports.
    Linked parts share one Store, so their calls to each other cross no Python.
    """

    parts: Mapping[str, Source]
    links: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    entry: str | None = None

    @property
    def entry_part(self) -> str:
        return self.entry or list(self.parts)[-1]


def _check_ghost(name: str, ghost: Ghost) -> None:
    """Reject a Ghost whose links or entry name parts it lacks, before summoning any."""
    parts = list(ghost.parts)
    listed = ", ".join(parts) or "none"
    if not parts:
        raise SeanceError(f"Ghost {name!r} has no parts to summon")
    if ghost.entry is not None and ghost.entry not in ghost.parts:
        raise SeanceError(
            f"Ghost {name!r} names entry {ghost.entry!r}, not one of its parts: {listed}"
        )
    for part, links in ghost.links.items():
        if part not in ghost.parts:
            raise SeanceError(f"Ghost {name!r} links part {part!r}, not one of its parts: {listed}")
        for module_name, other in links.items():
            if other not in ghost.parts or parts.index(other) >= parts.index(part):
                raise SeanceError(
                    f"Ghost {name!r}: part {part!r} links import module {module_name!r} to "
                    f"{other!r}, which is not a part listed before it (parts in order: {listed})"
                )


@attrs.define
class _Member:
    spirit: Spirit
    source: Source
    options: SpiritOptions
    links: dict[str, str]
    restart: Restart
    stats: Recorder
    #: Calls that trapped together restart the Spirit once (made on the first trap).
    restarting: asyncio.Lock | None = None


def _still(manager: InstanceManager, opts: SpiritOptions) -> Callable[[], bool]:
    """Whether ``manager`` is still the one a load with ``opts`` would find: the manager
    is open, no pool opened, the in-process cache was not cleared, the registry naming
    the Loas did not change."""
    registry = opts.loas if isinstance(opts.loas, LoaRegistry) else opts.registry
    generation = current_generation()
    version = registry.version if registry is not None else 0

    def check() -> bool:
        return (
            not manager.closed
            and not pools_open()
            and current_generation() == generation
            and (registry.version if registry is not None else 0) == version
        )

    return check


def _close_now(spirit: Spirit) -> bool:
    """Close ``spirit`` unless a call still holds its Store (then False: nothing done)."""
    if spirit.closed:
        return True
    lock = spirit.instance.lock
    if not lock.acquire(blocking=False):
        return False
    try:
        spirit.close()
    finally:
        lock.release()
    return True


async def _close(spirit: Spirit) -> None:
    """Close ``spirit``; while a call still holds its Store, wait for it off the event loop."""
    if not _close_now(spirit):
        await asyncio.get_running_loop().run_in_executor(worker_pool(), spirit.close)


class Seance:
    """A session of Spirits. Use ``async with Seance() as s``."""

    def __new__(cls, *args: Any, backend: Any = None, **kwargs: Any) -> Any:
        """``Seance(backend=RayBackend(...))`` is a Séance whose Spirits run elsewhere:
        the backend makes it (``backend.seance(**kwargs)``; see vudo_runtime.ray_backend)."""
        if backend is not None:
            return backend.seance(*args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        registry: LoaRegistry | None = None,
        *,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        state: StateBackend | None = None,
        namespace: str | None = None,
        backend: None = None,
    ) -> None:
        self.registry = registry or default_registry()
        self.bus = MessageBus(queue_limit)
        #: The shared state namespace (``state.of(name)``: Spirit ``name``'s own).
        self.state = SharedState(state, namespace)
        #: Spirits whose last call trapped or timed out, with the error.
        self.failures: dict[str, SpiritTrap] = {}
        self._members: dict[str, _Member] = {}
        #: OpenTelemetry spans for invoke, request and send (see vudo_runtime.metrics).
        self._tracing = _tracing()
        self._options: dict[tuple[Any, ...], SpiritOptions] = {}
        # The manager a summon with these (cached) options and this very bytes object
        # drew from, while nothing could have changed it: skips the recipe lookup.
        self._ready: dict[int, tuple[SpiritOptions, Source, Callable[[], bool], Any]] = {}
        self._dismissed = False

    # ---- lifetime --------------------------------------------------------------------------

    async def __aenter__(self) -> Seance:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dismiss()

    def _check_open(self) -> None:
        if self._dismissed:
            raise SeanceError("this Séance was dismissed; start a new one")

    async def summon(
        self,
        name: str,
        source: Source | Ghost,
        *,
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
    ) -> Spirit:
        """Load ``source`` as member ``name``; ``links`` meets import modules with members.

        ``options=`` gives the load options as one :class:`SpiritOptions`; keywords not
        left at their defaults override it. The Séance sets ``name`` and ``seance``.
        """
        self._check_open()
        if not isinstance(name, str) or not name:
            raise SeanceError(f"a Spirit needs a non-empty name, got {name!r}")
        if isinstance(source, Ghost):
            given = SpiritOptions.of(options, locals())
            return await self._summon_ghost(name, source, loas=given.loas, stdout=given.stdout)
        if name in self._members:
            raise SeanceError(f"a Spirit named {name!r} is already summoned; release it first")
        if restart not in ("never", "on-trap"):
            raise ValueError(f"restart must be 'never' or 'on-trap', got {restart!r}")
        # A name summoned again with the same options reuses their object (building one
        # costs more than the rest of a summon of a known Spirit).
        key: tuple[Any, ...] | None
        key = (name, options, loas, timeout, fuel, max_memory, mode, stdout, on_effect, cache,
               wasi, compact, trust, policy)  # fmt: skip
        opts: SpiritOptions | None
        try:
            opts = self._options.get(key)
        except TypeError:  # an unhashable option (loas= as a list): build it each time
            opts, key = None, None
        if opts is None:
            base = options or _DEFAULTS
            opts = SpiritOptions.of(
                options,
                locals(),
                name=name,
                seance=self,
                loas=loas if loas is not None else SEANCE_GRANT if base.loas is None else base.loas,
                registry=self.registry if base.registry is None else base.registry,
            )
            if key is not None:
                if len(self._options) >= 1024:
                    self._options.clear()
                    self._ready.clear()
                self._options[key] = opts
        linked = dict(links) if links else {}
        spirit = self._load_ready(source, opts) if not linked else None
        if spirit is None:
            spirit = await self._load(name, source, opts, linked)
        if name in self._members or self._dismissed:  # lost a race with another summon
            await _close(spirit)
            self._check_open()
            raise SeanceError(f"a Spirit named {name!r} is already summoned; release it first")
        stats = Recorder(reused=spirit.instance.uses > 1)
        self._members[name] = _Member(spirit, source, opts, linked, restart, stats)
        self.bus.join(name)
        return spirit

    def _load_ready(self, source: Source, opts: SpiritOptions) -> Spirit | None:
        """The Spirit, loaded on this thread when it is known and cached (cheaper than a
        thread hop); None when loading it needs the worker thread."""
        hint = self._ready.get(id(opts))
        if hint is not None and hint[0] is opts and hint[1] is source and hint[2]():
            return Spirit._load_sync(source, opts, hint[3])
        if (manager := ready_manager(source, opts)) is not None:
            if isinstance(source, bytes):  # immutable: the same object, the same module
                self._ready[id(opts)] = (opts, source, _still(manager, opts), manager)
            return Spirit._load_sync(source, opts, manager)
        if (wasm := known_wasm(source, opts.engine)) is not None:
            return Spirit._load_sync(wasm, opts)
        return None

    async def _load(
        self, name: str, source: Source, opts: SpiritOptions, links: Mapping[str, str]
    ) -> Spirit:
        if not links and (spirit := self._load_ready(source, opts)) is not None:
            return spirit
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            worker_pool(), lambda: self._load_sync(name, source, opts, links)
        )

    def _load_sync(
        self, name: str, source: Source, opts: SpiritOptions, links: Mapping[str, str]
    ) -> Spirit:
        if not links:
            return Spirit._load_sync(source, opts)
        return self._load_linked(name, source, links, opts)

    def _load_linked(
        self, name: str, source: Source, links: Mapping[str, str], opts: SpiritOptions
    ) -> Spirit:
        """Instantiate into the provider's Store, its exports defined for our imports."""
        providers = {}
        for module_name, member in links.items():
            if member not in self._members:
                raise SeanceError(
                    f"cannot link import module {module_name!r} of {name!r} to {member!r}: "
                    f"no such Spirit in this Séance (summoned: {', '.join(self.names) or 'none'})"
                )
            providers[module_name] = self._members[member].spirit
        stores = {id(p.instance.store) for p in providers.values()}
        if len(stores) != 1:
            raise SeanceError(f"{name!r} can link to Spirits of one Store only")
        provider = next(iter(providers.values()))
        if opts.fuel is not None or opts.max_memory is not None:
            raise SeanceError("fuel= and max_memory= apply to a Store: set them on the provider")
        wasm, spirit_name, label = read_source(source, name)
        settings = EngineSettings(fuel=provider.fuel is not None)
        module = compile_module(wasm, settings, cache=opts.cache, source=label)
        granted, registry = resolve_grant(opts.loas, opts.registry)
        plan, linker = plan_link(module, settings, spirit_name, granted, registry, links=providers)
        host = provider.instance
        store = host.store
        for module_name, p in providers.items():
            linker.define_instance(store, module_name, p.instance.instance)
            p.instance.clean = False  # its Store now holds another module: never reused
        context = HostContext(
            spirit_name, stdout=opts.stdout, on_effect=opts.on_effect, seance=self
        )
        bindings = plan.bindings(context)
        bindings.bind_store(host.address)
        try:
            instance = linker.instantiate(store, module)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            bindings.detach()
            raise SpiritLoadError(f"Spirit {name!r} could not be linked: {exc}") from exc
        inst = Instance(store, instance, host.address, module, bindings, lock=host.lock)
        return Spirit(inst, name=spirit_name, timeout=opts.timeout, mode=opts.mode)

    async def _summon_ghost(
        self, name: str, ghost: Ghost, *, loas: LoaGrant, stdout: Any
    ) -> Spirit:
        _check_ghost(name, ghost)
        entry = None
        summoned: list[str] = []
        try:
            for part, source in ghost.parts.items():
                links = {mod: f"{name}.{other}" for mod, other in ghost.links.get(part, {}).items()}
                spirit = await self.summon(
                    f"{name}.{part}", source, loas=loas, links=links, stdout=stdout
                )
                summoned.append(f"{name}.{part}")
                if part == ghost.entry_part:
                    entry = spirit
        except BaseException:
            # One unit: a part that fails takes the parts summoned before it along.
            for member in reversed(summoned):
                if not self._dismissed and member in self._members:
                    await self.release(member)
            raise
        assert entry is not None
        return entry

    async def release(self, name: str) -> None:
        """Dismiss one Spirit; its name becomes free again."""
        member = self._member(name)
        del self._members[name]
        self.bus.leave(name)
        self.failures.pop(name, None)
        if not _close_now(member.spirit):
            await _close(member.spirit)

    def state_of(self, name: str) -> SharedState:
        """Spirit ``name``'s own state namespace (what its vudo_state_*_own functions use)."""
        return self.state.of(name)

    def interrupt(self, name: str) -> bool:
        """Stop the call running in Spirit ``name`` within one epoch tick (see
        :meth:`Spirit.interrupt`); True if a call was running."""
        return self._member(name).spirit.interrupt()

    async def dismiss(self) -> None:
        """Release every Spirit. Later use of this Séance raises SeanceError."""
        if self._dismissed:
            return
        self._dismissed = True
        for name in list(self._members):
            member = self._members.pop(name)
            self.bus.leave(name)
            await _close(member.spirit)

    async def restart(self, name: str) -> Spirit:
        """Replace ``name`` with a fresh instance of the same source and options."""
        member = self._member(name)
        fresh = await self._load(name, member.source, member.options, member.links)
        if self._members.get(name) is not member:  # released or dismissed meanwhile
            await _close(fresh)
            self._member(name)  # raises: dismissed, or no such Spirit
            raise SeanceError(f"{name!r} was released and summoned again during its restart")
        old, member.spirit = member.spirit, fresh
        self.failures.pop(name, None)
        await old.drain()  # calls already sent to the old instance finish there
        await _close(old)
        return fresh

    # ---- calls -----------------------------------------------------------------------------

    async def invoke(
        self, name: str, fn: str, *args: Any, timeout: float | None = None,
        mode: CallMode | None = None,
    ) -> Any:  # fmt: skip
        """Call ``fn`` on member ``name``; a trap is recorded in ``failures`` under its name."""
        member = self._member(name)
        spirit = member.spirit
        stats = member.stats
        start = perf_counter()
        try:
            if self._tracing:
                with span("vudo.invoke", {"vudo.spirit": name, "vudo.function": fn}):
                    result = await spirit.call(fn, *args, timeout=timeout, mode=mode)
            else:
                result = await spirit.call(fn, *args, timeout=timeout, mode=mode)
        except SpiritTrap as exc:
            stats.record(
                perf_counter() - start, failed=True, timed_out=isinstance(exc, SpiritTimeout)
            )
            stats.count_fuel(spirit, spirit.fuel)
            if member.restart == "on-trap":
                # Calls that trapped together restart the Spirit once, not once each.
                if member.restarting is None:
                    member.restarting = asyncio.Lock()
                async with member.restarting:
                    if member.spirit is spirit and self._members.get(name) is member:
                        await self.restart(name)
            self.failures[name] = exc
            raise
        stats.record(perf_counter() - start)
        if spirit.fuel is not None:
            stats.count_fuel(spirit, spirit.fuel)
        return result

    def stats(self) -> dict[str, SpiritStats]:
        """What each member did through :meth:`invoke`: calls, traps, timeouts, fuel used,
        whether its instance was a reused one, and a latency histogram."""
        return {name: member.stats.snapshot() for name, member in self._members.items()}

    async def invoke_many(
        self,
        name: str,
        fn: str,
        calls: Iterable[Any],
        *,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """``fn`` called once per item of ``calls`` (an argument tuple, or one argument), in
        order, on member ``name``; with ``return_exceptions`` a failed call's error takes
        its place instead of ending the batch. One call at a time here; on a Ray backend
        the whole batch is one actor call."""
        results: list[Any] = []
        for args in calls:
            args = tuple(args) if isinstance(args, tuple | list) else (args,)
            try:
                results.append(await self.invoke(name, fn, *args, timeout=timeout))
            except VudoError as exc:
                if not return_exceptions:
                    raise
                results.append(exc)
        return results

    def _member(self, name: str) -> _Member:
        self._check_open()
        try:
            return self._members[name]
        except KeyError:
            raise SeanceError(
                f"no Spirit named {name!r} in this Séance; summoned: "
                f"{', '.join(self._members) or 'none'}"
            ) from None

    # ---- membership ------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Spirit:
        return self._member(name).spirit

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._members))

    @property
    def names(self) -> list[str]:
        return list(self._members)

    @property
    def dismissed(self) -> bool:
        return self._dismissed

    # ---- messages from the host ----------------------------------------------------------

    def send(self, from_: str, to: str, payload: bytes | str, channel: int = 0) -> bool:
        """Queue a message to ``to`` as if ``from_`` sent it; False if ``to``'s queue is full."""
        self._check_open()
        if to not in self._members:
            raise SeanceError(f"no Spirit named {to!r} to send to; summoned: {self.names}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        if self._tracing:
            with span("vudo.message", {"vudo.from": from_, "vudo.to": to, "vudo.channel": channel}):
                return self.bus.send(from_, to, data, channel)
        return self.bus.send(from_, to, data, channel)

    async def request(
        self,
        to: str,
        payload: bytes | str,
        *,
        timeout: float | None = 5.0,
        channel: int = 0,
        from_: str = "host",
    ) -> bytes:
        """Send ``to`` a request and wait for its reply's payload.

        The guest reads it as any message (``vudo_recv``), learns its id from
        ``vudo_request_id()`` and answers with ``vudo_reply(id, ptr, len)``. Raises
        :class:`RequestTimeout` when no reply came within ``timeout`` seconds.
        """
        self._check_open()
        if to not in self._members:
            raise SeanceError(f"no Spirit named {to!r} to ask; summoned: {self.names}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        with span("vudo.request", {"vudo.from": from_, "vudo.to": to, "vudo.channel": channel}):
            message = await self.bus.ask(from_, to, data, channel, timeout)
        return message.payload

    def reply(self, request: Message, payload: bytes | str, *, from_: str = "host") -> bool:
        """Answer a request a Spirit sent the host (a :class:`Message` from
        :meth:`receive` with a ``request_id``); False when the requester is gone."""
        if not request.request_id:
            raise SeanceError(f"{request!r} is not a request: it has no request_id")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        return self.bus.reply(from_, request.request_id, data)

    def pending(self, name: str, channel: int = 0) -> int:
        return self.bus.pending(name, channel)

    async def receive(
        self, name: str, *, channel: int = 0, timeout: float | None = None
    ) -> Message:
        """Wait for the next message addressed to ``name`` (a host-side listener)."""
        self._check_open()
        self.bus.join(name)
        return await self.bus.receive(name, channel, timeout)

    def __repr__(self) -> str:
        state = "dismissed" if self._dismissed else f"{len(self)} Spirits"
        return f"<Seance {state}: {', '.join(self.names)}>"
