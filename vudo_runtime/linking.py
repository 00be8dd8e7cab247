"""Linking: a module's imports met by granted Loas, once per module and grant.

A module's imports are bound once per (module, granted Loas) into a linker and an
``InstancePre``; each host function finds its instance's callables through the caller's
store address, so every instance of a module shares that one link.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import attrs
import wasmtime

from vudo_runtime import _native
from vudo_runtime.engine import EngineSettings, get_engine
from vudo_runtime.errors import (
    CapabilityError,
    GuestPanic,
    MissingImportError,
    SpiritLoadError,
    VudoError,
)
from vudo_runtime.loa import LOA_MODULES, HostContext, HostFunction, Loa, variants
from vudo_runtime.loas.wasi import WASI_MODULES
from vudo_runtime.module import Signature
from vudo_runtime.registry import LoaRegistry


@attrs.frozen
class _Import:
    module: str
    name: str
    signature: Signature
    loa: Loa
    variant: HostFunction


class LinkPlan:
    """A module linked against granted Loas: one linker, one InstancePre, many instances."""

    def __init__(
        self,
        module: wasmtime.Module,
        settings: EngineSettings,
        imports: Sequence[_Import],
        *,
        wasi: bool = False,
    ) -> None:
        self.module = module
        self.settings = settings
        self.imports = tuple(imports)
        #: Its WASI imports are met by wasmtime's WASI: each instance needs a WasiConfig.
        self.wasi = wasi
        self.has_async = any(i.variant.is_async for i in imports)
        # store context address -> that instance's bindings, one map per plan so that two
        # modules linked into one store (a Ghost) each find their own instance; weak, so a
        # Spirit dropped without close() is freed
        self.instances: weakref.WeakValueDictionary[int, HostBindings] = (
            weakref.WeakValueDictionary()
        )

    def bindings(self, context: HostContext) -> HostBindings:
        return HostBindings(self, context)


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
    """One instance's side of a link: its host callables and the error its call left.

    What host functions see lives in its :class:`HostContext`, which knows nothing of
    this object, so an instance's host side holds no reference cycle.
    """

    def __init__(self, plan: LinkPlan, context: HostContext) -> None:
        self.plan = plan
        self.context = context
        self.error: BaseException | None = None
        self.message: str | None = None
        self.table: list[Callable[..., Any] | None] = [None] * len(plan.imports)
        self._provided: dict[str, Mapping[str, Any]] = {}

    @property
    def has_async(self) -> bool:
        return self.plan.has_async

    @property
    def store_address(self) -> int:
        """The context address of the Store the instance lives in (0 before bind_store)."""
        return self.context.address

    def bind_store(self, address: int) -> None:
        """Register before instantiation, so a start function's host calls find us."""
        self.context.address = address
        self.plan.instances[address] = self

    def rebind(self, context: HostContext) -> None:
        """Serve a new user of the same instance: its context, nothing of the last one."""
        context.address = self.context.address
        self.context = context
        self.error = self.message = None
        self.table = [None] * len(self.plan.imports)
        self._provided = {}

    def detach(self) -> None:
        address = self.context.address
        if self.plan.instances.get(address) is self:
            del self.plan.instances[address]
        self.context.attach(None)

    def build(self, slot: int) -> Callable[..., Any]:
        """Ask the Loa for its functions (once per instance) and adapt this import's one."""
        imp = self.plan.imports[slot]
        provided = self._provided.get(imp.loa.name)
        if provided is None:
            provided = self._provided[imp.loa.name] = imp.loa.provides(self.context)
        for variant in variants(provided[imp.name]):
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

    spirit = seance = stdout = on_effect = property(_at_link_time)


def _offered(loa: Loa, spirit: str) -> Mapping[str, Any]:
    try:
        return loa.provides(_ProbeContext(spirit))
    except Exception as exc:
        raise SpiritLoadError(f"Loa {loa.name!r} failed to provide its functions: {exc}") from exc


def _signature(ftype: wasmtime.FuncType) -> Signature:
    return Signature(
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
    declared: dict[tuple[str, str], Signature] = {}
    wasi = False
    for imp in module.imports:
        if links and imp.module in links:
            continue
        if imp.module in WASI_MODULES:
            if any(loa.name == "wasi" for loa in granted):
                wasi = True
            elif "wasi" in registry:
                denied.append(f"{_describe(imp)} is WASI, and the Loa 'wasi' is not granted")
                to_grant.append("wasi")
            else:
                missing.append(_describe(imp))
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
            found = next((v for v in variants(entry) if v.accepts(sig)), None)
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
    plan = LinkPlan(module, settings, imports, wasi=wasi)
    linker = wasmtime.Linker(get_engine(settings))
    if wasi:
        linker.define_wasi()
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
    registry: LoaRegistry, granted: Sequence[Loa], name: str, sig: Signature, spirit: str
) -> str | None:
    names = {loa.name for loa in granted}
    for loa in registry:
        if loa.name in names:
            continue
        entry = _offered(loa, spirit).get(name) if loa.offers(name) else None
        if entry is not None and any(v.accepts(sig) for v in variants(entry)):
            return loa.name
    return None


def link(
    module: wasmtime.Module,
    settings: EngineSettings,
    spirit: str,
    granted: tuple[Loa, ...],
    registry: LoaRegistry,
    *,
    unchecked: bool = True,
) -> tuple[LinkPlan, wasmtime.InstancePre]:
    """The link of ``module`` with the granted Loas: one plan and InstancePre (cached)."""
    key = (module, settings, granted, unchecked)
    cached = _plans.get(key)
    if cached is None:
        plan, linker = plan_link(module, settings, spirit, granted, registry, unchecked=unchecked)
        try:
            pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise SpiritLoadError(f"Spirit {spirit!r} could not be linked: {exc}") from exc
        with _plans_lock:
            cached = _plans.setdefault(key, (plan, pre))
    return cached
