"""Loa: named, versioned services of host functions, granted to Spirits as capabilities.

A module's imports are bound once per (module, granted Loas) into a linker and an
``InstancePre``; each host function finds its instance's callables through the caller's
store, so every instance of a module shares that one link.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import attrs
import wasmtime

from vudo_runtime import _native
from vudo_runtime.engine import EngineSettings, get_engine, time_left
from vudo_runtime.errors import (
    CapabilityError,
    MissingImportError,
    SpiritLoadError,
    VudoError,
)

if TYPE_CHECKING:
    from vudo_runtime.memory import MemoryManager
    from vudo_runtime.spirit import Spirit

#: Module names under which Loa functions are offered (DOL-ABI.md: imports).
LOA_MODULES = ("loa", "vudo", "env")
#: Granted when ``loas=`` is not given.
DEFAULT_GRANT = ("core", "messaging")


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class WasmSignature:
    """A wasm function type as strings: ``WasmSignature(("i32", "i32"), ())``."""

    params: tuple[str, ...] = attrs.field(converter=_strings)
    results: tuple[str, ...] = attrs.field(converter=_strings, default=())

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


_KINDS = {int: "int", float: "float", bool: "bool", str: "str", bytes: "bytes", type(None): "none"}
_WASM_FOR_KIND = {"int": ("i32", "i64"), "float": ("f32", "f64"), "bool": ("i32",)}


@attrs.frozen
class HostFunction:
    """A host function and how it meets a wasm signature.

    ``signature`` fixes the exact wasm type (raw values in and out). ``kinds`` (set by
    :func:`host_function`) lists typed parameters: ``str``/``bytes`` take a ``(ptr, len)``
    pair, ``int``/``float``/``bool`` one value; ``result`` ``str`` is written to guest
    memory and returned as a DOL string pointer. With neither, any signature of the
    callable's arity is accepted and raw values are passed.
    """

    fn: Callable[..., Any]
    signature: WasmSignature | None = None
    kinds: tuple[str, ...] | None = None
    result: str | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def accepts(self, sig: WasmSignature) -> bool:
        if self.signature is not None:
            return self.signature == sig
        if self.kinds is None:
            return _arity_ok(self.fn, len(sig.params))
        wasm: list[tuple[str, ...]] = []
        for kind in self.kinds:
            wasm += [("i32",), ("i32",)] if kind in ("str", "bytes") else [_WASM_FOR_KIND[kind]]
        if len(wasm) != len(sig.params):
            return False
        if not all(p in allowed for p, allowed in zip(sig.params, wasm, strict=True)):
            return False
        if self.result in (None, "none"):
            return sig.results == () or (self.result is None and len(sig.results) <= 1)
        if self.result in ("str", "bytes"):
            return sig.results == ("i32",)
        return len(sig.results) == 1 and sig.results[0] in _WASM_FOR_KIND[self.result]

    def adapt(self, ctx: HostContext) -> Callable[..., Any]:
        """The callable the trampoline calls with raw wasm values, for one instance."""
        fn = self.fn
        if self.is_async:
            fn = _blocking(fn, ctx)
        if self.kinds is None:
            return fn
        kinds, result = self.kinds, self.result

        def typed(*raw: Any) -> Any:
            args: list[Any] = []
            i = 0
            for kind in kinds:
                if kind == "str":
                    args.append(ctx.read_str(raw[i], raw[i + 1]))
                    i += 2
                elif kind == "bytes":
                    args.append(ctx.read_bytes(raw[i], raw[i + 1]))
                    i += 2
                else:
                    args.append(bool(raw[i]) if kind == "bool" else raw[i])
                    i += 1
            out = fn(*args)
            if result == "str":
                return ctx.write_string(out)
            if result == "bytes":
                return ctx.memory.write_bytes_prefixed(out)
            return int(out) if result == "bool" else out

        return typed


def _arity_ok(fn: Callable[..., Any], n: int) -> bool:
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        return False
    except ValueError:  # builtins without a signature: trust them
        return True
    return True


def host_function(
    fn: Callable[..., Any] | None = None, *, signature: WasmSignature | None = None
) -> Any:
    """Make a :class:`HostFunction` from a typed Python function (decorator).

    Parameters annotated ``str``/``bytes`` arrive from a ``(ptr, len)`` pair, ``int``,
    ``float``, ``bool`` as themselves; a ``str`` result is written to guest memory.
    """

    def make(f: Callable[..., Any]) -> HostFunction:
        if signature is not None:
            return HostFunction(f, signature=signature)
        hints = _hints(f)
        kinds = []
        for p in inspect.signature(f).parameters.values():
            kind = _KINDS.get(hints.get(p.name, int))
            if kind is None or kind == "none":
                raise TypeError(
                    f"host function {f.__name__}: parameter {p.name!r} has an unsupported "
                    "annotation; use int, float, bool, str or bytes"
                )
            kinds.append(kind)
        result = _KINDS.get(hints.get("return", type(None)))
        if result is None:
            raise TypeError(f"host function {f.__name__}: unsupported return annotation")
        return HostFunction(f, kinds=tuple(kinds), result=result)

    return make(fn) if fn is not None else make


def _hints(f: Callable[..., Any]) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(f)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        return dict(getattr(f, "__annotations__", {}))


def _blocking(fn: Callable[..., Any], ctx: HostContext) -> Callable[..., Any]:
    """Run an ``async def`` host function on the calling event loop and wait for it."""

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        loop = ctx.bindings.loop
        # The loop of an earlier `await spirit.call` may be closed or stopped by now:
        # scheduling on it would fail, or wait forever for a loop that no longer runs.
        if loop is None or loop.is_closed() or not loop.is_running():
            raise VudoError(
                f"async host function {fn.__name__} needs an event loop: call the Spirit with "
                "`await spirit.call(...)` (it then runs on a worker thread)"
            )
        if _running_loop() is loop:
            raise VudoError(
                f"async host function {fn.__name__} was called on the event loop thread; "
                "the Spirit must be called with `await spirit.call(...)`, not call_sync"
            )
        address = ctx.bindings.store_address
        # Marks the coroutine's context: a call it makes back into this Spirit would wait
        # for the Store this thread holds until the coroutine ends, so it fails at once.
        token = awaiting_host.set((*awaiting_host.get(), address))
        try:
            future = asyncio.run_coroutine_threadsafe(fn(*args), loop)
        finally:
            awaiting_host.reset(token)
        try:
            return future.result(ctx.time_left)  # never past the call's deadline
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise VudoError(
                f"async host function {fn.__name__} did not finish before the call's "
                "deadline (timeout=)"
            ) from None

    return run


#: Store addresses whose thread waits for an async host function run in this context.
awaiting_host: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "vudo_awaiting_host", default=()
)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


HostEntry: TypeAlias = "Callable[..., Any] | HostFunction | Sequence[HostFunction]"


def _variants(entry: Any) -> list[HostFunction]:
    if isinstance(entry, HostFunction):
        return [entry]
    if isinstance(entry, list | tuple):
        return [e if isinstance(e, HostFunction) else HostFunction(e) for e in entry]
    if callable(entry):
        return [HostFunction(entry)]
    raise TypeError(f"a Loa must provide callables or HostFunctions, not {type(entry).__name__}")


@attrs.frozen(kw_only=True)
class Loa:
    """A named, versioned service: ``provides(ctx)`` returns its host functions by name.

    ``capabilities`` names the functions a Spirit may import from it; whatever else
    ``provides`` returns stays private to the host. A Loa that lists none offers all it
    provides.
    """

    name: str = attrs.field()
    version: str = "1.0.0"
    capabilities: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    # Part of equality: linked modules are cached per granted Loas, so two Loas that differ
    # only in their functions must not share a link.
    provides: Callable[[HostContext], Mapping[str, Any]] = attrs.field()

    @name.validator
    def _check_name(self, _: attrs.Attribute[str], value: str) -> None:
        if not value or not isinstance(value, str):
            raise ValueError("a Loa needs a non-empty name")

    def offers(self, name: str) -> bool:
        """Whether Spirits may import ``name`` from this Loa (it is one of its capabilities)."""
        return not self.capabilities or name in self.capabilities


class LoaRegistry:
    """The Loas a host offers. Created holding the built-ins ``core``, ``messaging``, ``state``."""

    def __init__(self, loas: Iterable[Loa] = ()) -> None:
        from vudo_runtime.loas import BUILTIN_LOAS

        self._loas: dict[str, Loa] = {loa.name: loa for loa in BUILTIN_LOAS}
        # resolved grants by the names asked for; forgotten when the registry changes
        self._grants: dict[tuple[str | Loa, ...], tuple[Loa, ...]] = {}
        for loa in loas:
            self.register(loa)

    def register(self, loa: Loa) -> Loa:
        if not isinstance(loa, Loa):
            raise TypeError(f"expected a Loa, got {type(loa).__name__}")
        if loa.name in self._loas:
            raise VudoError(f"a Loa named {loa.name!r} is already registered; unregister it first")
        self._loas[loa.name] = loa
        self._grants.clear()
        return loa

    def unregister(self, name: str) -> None:
        if name == "core":
            raise VudoError("the core Loa cannot be unregistered")
        if self._loas.pop(name, None) is None:
            raise KeyError(f"no Loa named {name!r} is registered")
        self._grants.clear()

    def get(self, name: str) -> Loa:
        try:
            return self._loas[name]
        except KeyError:
            raise KeyError(f"no Loa named {name!r}; registered: {', '.join(self._loas)}") from None

    def names(self) -> list[str]:
        return list(self._loas)

    def __contains__(self, name: object) -> bool:
        return name in self._loas

    def __iter__(self) -> Iterator[Loa]:
        return iter(list(self._loas.values()))

    def __len__(self) -> int:
        return len(self._loas)

    def __repr__(self) -> str:
        return f"LoaRegistry({self.names()})"


_default_registry: LoaRegistry | None = None


def default_registry() -> LoaRegistry:
    """The process-wide registry used when none is given."""
    global _default_registry
    if _default_registry is None:
        _default_registry = LoaRegistry()
    return _default_registry


LoaGrant: TypeAlias = "LoaRegistry | Iterable[str | Loa] | None"


def resolve_grant(
    loas: LoaGrant, registry: LoaRegistry | None = None, default: Sequence[str] = DEFAULT_GRANT
) -> tuple[tuple[Loa, ...], LoaRegistry]:
    """The Loas granted by ``loas=`` and the registry that names them."""
    registry = registry or default_registry()
    if isinstance(loas, LoaRegistry):
        return tuple(loas), loas
    names: Iterable[str | Loa] = default if loas is None else loas
    if isinstance(names, str | Loa):
        names = [names]
    key = tuple(names) if isinstance(names, tuple | list) else None
    if key is not None and (known := registry._grants.get(key)) is not None:
        return known, registry
    granted: dict[str, Loa] = {}
    for item in names:
        if isinstance(item, Loa):
            granted[item.name] = item
        elif item in registry:
            granted[item] = registry.get(item)
        else:
            raise SpiritLoadError(
                f"cannot grant Loa {item!r}: it is not registered (registered: "
                f"{', '.join(registry.names())}); register it or pass the Loa object"
            )
    granted.setdefault("core", registry.get("core"))
    result = tuple(granted.values())
    if key is not None:
        registry._grants[key] = result
    return result, registry


# ---- per-instance state --------------------------------------------------------------------


class HostContext:
    """What a Loa's host functions see of the calling Spirit."""

    def __init__(self, bindings: HostBindings) -> None:
        self.bindings = bindings

    @property
    def spirit(self) -> Spirit:
        spirit = self.bindings.spirit
        if spirit is None:
            raise VudoError("the Spirit is not ready yet (host call from its start function)")
        return spirit

    @property
    def spirit_name(self) -> str:
        return self.bindings.name

    @property
    def seance(self) -> Any:
        return self.bindings.seance

    @property
    def memory(self) -> MemoryManager:
        memory = self.spirit.memory
        if memory is None:
            raise VudoError(
                f"Spirit {self.spirit_name!r} exports no memory, so its host functions cannot "
                "exchange strings or bytes; export memory 0 as 'memory'"
            )
        return memory

    @property
    def stdout(self) -> Any:
        return self.bindings.stdout

    @property
    def time_left(self) -> float | None:
        """Seconds before the running call's ``timeout=`` deadline (None: it has none). A
        host function that waits must not wait longer: the guest cannot be interrupted
        while the host runs."""
        return time_left(self.bindings.store_address)

    @property
    def on_effect(self) -> Callable[..., Any] | None:
        return self.bindings.on_effect

    def read_str(self, ptr: int, length: int) -> str:
        """A raw UTF-8 ``(ptr, len)`` range from the guest (bounds-checked)."""
        return self.memory.read_str(ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)

    def read_bytes(self, ptr: int, length: int) -> bytes:
        return self.memory.read_bytes(ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)

    def write_string(self, s: str) -> int:
        """Write ``s`` as a DOL length-prefixed string; returns its pointer."""
        return self.memory.write_string(s)


class GuestPanic(Exception):
    """Raised by host functions that trap on the guest's behalf (panic, assert, abort)."""


@attrs.frozen
class _Import:
    module: str
    name: str
    signature: WasmSignature
    loa: Loa
    variant: HostFunction


class LinkPlan:
    """A module linked against granted Loas: one linker, one InstancePre, many instances."""

    def __init__(
        self, module: wasmtime.Module, settings: EngineSettings, imports: Sequence[_Import]
    ) -> None:
        self.module = module
        self.settings = settings
        self.imports = tuple(imports)
        self.has_async = any(i.variant.is_async for i in imports)
        # store context address -> that instance's bindings, one map per plan so that two
        # modules linked into one store (a Ghost) each find their own instance; weak, so a
        # Spirit dropped without close() is freed
        self.instances: weakref.WeakValueDictionary[int, HostBindings] = (
            weakref.WeakValueDictionary()
        )

    def bindings(self, name: str, **options: Any) -> HostBindings:
        return HostBindings(self, name, **options)


def _resolve(instances: Mapping[int, HostBindings], slot: int) -> _native.Resolver:
    def resolve(ctx_addr: int) -> Callable[..., Any]:
        bindings = instances.get(ctx_addr)
        if bindings is None:
            raise VudoError("host function called from an instance the runtime does not know")
        fn = bindings.table[slot]
        return fn if fn is not None else bindings.build(slot)

    return resolve


def _error_hook(instances: Mapping[int, HostBindings]) -> _native.ErrorHook:
    def on_error(ctx_addr: int, exc: BaseException) -> str:
        bindings = instances.get(ctx_addr)
        if bindings is not None:
            bindings.error = exc
            if isinstance(exc, GuestPanic):
                bindings.message = str(exc)
        if isinstance(exc, GuestPanic):
            return str(exc)
        return f"host function raised {type(exc).__name__}: {exc}"

    return on_error


def _convert_result(pos: int, ty: str, value: Any) -> Any:
    if ty in ("i32", "i64"):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            raise ValueError(f"host function result {pos} ({ty}) out of range: {value}")
        raise TypeError(f"host function result {pos} must be int for {ty}, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"host function result {pos} must be float for {ty}, got {value!r}")


class HostBindings:
    """One instance's side of a link: its context, callables, pending error and options."""

    def __init__(
        self,
        plan: LinkPlan,
        name: str,
        *,
        stdout: Any = None,
        on_effect: Callable[..., Any] | None = None,
        seance: Any = None,
    ) -> None:
        self.plan = plan
        self.name = name
        self.stdout = stdout
        self.on_effect = on_effect
        self.seance = seance
        self.spirit: Spirit | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self.message: str | None = None
        self.table: list[Callable[..., Any] | None] = [None] * len(plan.imports)
        self.context = HostContext(self)
        self._provided: dict[str, Mapping[str, Any]] = {}
        self._address = 0
        self._lock = threading.Lock()

    @property
    def has_async(self) -> bool:
        return self.plan.has_async

    @property
    def store_address(self) -> int:
        """The context address of the Store the instance lives in (0 before bind_store)."""
        return self._address

    def bind_store(self, store: wasmtime.Store) -> None:
        """Register before instantiation, so a start function's host calls find us."""
        self._address = _native.store_address(store)
        self.plan.instances[self._address] = self

    def attach(self, spirit: Spirit) -> None:
        self.spirit = spirit

    def detach(self) -> None:
        if self.plan.instances.get(self._address) is self:
            del self.plan.instances[self._address]
        self.spirit = None

    def build(self, slot: int) -> Callable[..., Any]:
        """Ask the Loa for its functions (once per instance) and adapt this import's one."""
        imp = self.plan.imports[slot]
        provided = self._provided.get(imp.loa.name)
        if provided is None:
            provided = self._provided[imp.loa.name] = imp.loa.provides(self.context)
        for variant in _variants(provided[imp.name]):
            if variant.accepts(imp.signature):
                fn = variant.adapt(self.context)
                self.table[slot] = fn
                return fn
        raise VudoError(f"Loa {imp.loa.name!r} no longer provides {imp.name}{imp.signature}")

    def take_error(self) -> BaseException | None:
        """The pending host exception; its guest message (if still unread) goes with it."""
        error, self.error, self.message = self.error, None, None
        return error

    def take_message(self) -> str | None:
        message, self.message = self.message, None
        return message


# ---- linking -------------------------------------------------------------------------------

_plans: dict[tuple[Any, ...], tuple[LinkPlan, wasmtime.InstancePre]] = {}
_plans_lock = threading.Lock()


def _at_link_time(ctx: HostContext) -> NoReturn:
    raise VudoError(
        "a Loa's provides(ctx) also runs at link time, before any instance exists: use "
        "ctx.spirit, ctx.memory, ctx.seance, ctx.stdout and ctx.on_effect inside the host "
        "functions it returns, not in provides itself"
    )


class _ProbeContext(HostContext):
    """Given to ``provides`` at link time, to learn names and signatures; not for calls.

    It knows the Spirit's name; what belongs to a live instance raises a clear error.
    """

    def __init__(self, spirit: str) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self._spirit = spirit

    @property
    def spirit_name(self) -> str:
        return self._spirit

    spirit = seance = stdout = on_effect = property(_at_link_time)


def _offered(loa: Loa, spirit: str) -> Mapping[str, Any]:
    try:
        return loa.provides(_ProbeContext(spirit))
    except Exception as exc:
        raise SpiritLoadError(f"Loa {loa.name!r} failed to provide its functions: {exc}") from exc


def _signature(ftype: wasmtime.FuncType) -> WasmSignature:
    return WasmSignature(
        [_native.type_name(t) for t in ftype.params], [_native.type_name(t) for t in ftype.results]
    )


def _describe(imp: wasmtime.ImportType) -> str:
    ty = imp.type
    if isinstance(ty, wasmtime.FuncType):
        return f"{imp.module}.{imp.name}: {_signature(ty)}"
    return f"{imp.module}.{imp.name}: {type(ty).__name__.removesuffix('Type').lower()}"


def plan_link(
    module: wasmtime.Module,
    settings: EngineSettings,
    spirit: str,
    granted: Sequence[Loa],
    registry: LoaRegistry,
    *,
    links: Mapping[str, Any] | None = None,
    unchecked: bool = True,
) -> tuple[LinkPlan, wasmtime.Linker]:
    """Match every import against the granted Loas; raise listing every unmet one."""
    offered = {loa.name: _offered(loa, spirit) for loa in granted}
    imports: list[_Import] = []
    missing: list[str] = []
    hints: list[str] = []
    denied: list[str] = []
    to_grant: list[str] = []
    declared: dict[tuple[str, str], WasmSignature] = {}
    for imp in module.imports:
        if links and imp.module in links:
            continue
        ty = imp.type
        if imp.module not in LOA_MODULES or not isinstance(ty, wasmtime.FuncType) or not imp.name:
            missing.append(_describe(imp))
            continue
        sig = _signature(ty)
        first = declared.setdefault((imp.module, imp.name), sig)
        if first is not sig:  # imported again: one name is one host function in the linker
            if first != sig:
                raise SpiritLoadError(
                    f"Spirit {spirit!r} imports {imp.module}.{imp.name} twice, as {first} and "
                    f"as {sig}; one import name can have one signature only"
                )
            continue  # the same signature again: the one definition serves both
        found = None
        for loa in granted:
            entry = offered[loa.name].get(imp.name)
            if entry is None:
                continue
            if not loa.offers(imp.name):
                hints.append(
                    f"Loa {loa.name!r} provides {imp.name} but does not list it in its"
                    " capabilities, so Spirits cannot import it"
                )
                continue
            found = next((v for v in _variants(entry) if v.accepts(sig)), None)
            if found is not None:
                imports.append(_Import(imp.module, imp.name, sig, loa, found))
                break
            hints.append(f"Loa {loa.name!r} provides {imp.name} but not with signature {sig}")
        if found is not None:
            continue
        other = _ungranted_provider(registry, granted, imp.name, sig, spirit)
        if other is not None:
            denied.append(f"{_describe(imp)} is provided by Loa {other!r}, which is not granted")
            to_grant.append(other)
            continue
        missing.append(_describe(imp))
    if denied:
        names = sorted({loa.name for loa in granted} | set(to_grant))
        raise CapabilityError(
            f"Spirit {spirit!r} needs capabilities it was not granted:\n  "
            + "\n  ".join(denied)
            + f"\nGrant the Loa(s) {', '.join(map(repr, sorted(set(to_grant))))}: loas={names!r}"
        )
    if missing:
        raise MissingImportError(spirit, missing, hints)
    plan = LinkPlan(module, settings, imports)
    linker = wasmtime.Linker(get_engine(settings))
    on_error = _error_hook(plan.instances)
    for slot, bound in enumerate(plan.imports):
        _native.define_host_func(
            linker,
            bound.module,
            bound.name,
            bound.signature.params,
            bound.signature.results,
            _resolve(plan.instances, slot),
            on_error,
            _convert_result,
            unchecked=unchecked,
        )
    return plan, linker


def _ungranted_provider(
    registry: LoaRegistry, granted: Sequence[Loa], name: str, sig: WasmSignature, spirit: str
) -> str | None:
    names = {loa.name for loa in granted}
    for loa in registry:
        if loa.name in names:
            continue
        entry = _offered(loa, spirit).get(name) if loa.offers(name) else None
        if entry is not None and any(v.accepts(sig) for v in _variants(entry)):
            return loa.name
    return None


def link(
    module: wasmtime.Module,
    settings: EngineSettings,
    spirit: str,
    loas: LoaGrant,
    *,
    registry: LoaRegistry | None = None,
    unchecked: bool = True,
    **options: Any,
) -> tuple[wasmtime.InstancePre, HostBindings]:
    """An InstancePre for ``module`` with the granted Loas (cached) and fresh bindings."""
    granted, reg = resolve_grant(loas, registry)
    key = (module, settings, granted, unchecked)
    cached = _plans.get(key)
    if cached is None:
        plan, linker = plan_link(module, settings, spirit, granted, reg, unchecked=unchecked)
        try:
            pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise SpiritLoadError(f"Spirit {spirit!r} could not be linked: {exc}") from exc
        with _plans_lock:
            cached = _plans.setdefault(key, (plan, pre))
    plan, pre = cached
    return pre, plan.bindings(spirit, **options)
