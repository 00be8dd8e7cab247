"""Loa: named, versioned services of host functions, granted to Spirits as capabilities.

This is the public side: what a host function is, how it meets a wasm signature, and the
context it sees. ``registry`` names Loas; ``linking`` binds them to a module's imports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import typing
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from vudo_runtime.engine import time_left
from vudo_runtime.errors import NoMemoryError, VudoError
from vudo_runtime.module import Signature, str_tuple
from vudo_runtime.threads import running_loop

if TYPE_CHECKING:
    from vudo_runtime.memory import MemoryManager
    from vudo_runtime.spirit import Spirit

#: Module names under which Loa functions are offered (DOL-ABI.md: imports).
LOA_MODULES = ("loa", "vudo", "env")


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
    signature: Signature | None = None
    kinds: tuple[str, ...] | None = None
    result: str | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def accepts(self, sig: Signature) -> bool:
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
    fn: Callable[..., Any] | None = None, *, signature: Signature | None = None
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
    try:
        return typing.get_type_hints(f)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        return dict(getattr(f, "__annotations__", {}))


def _blocking(fn: Callable[..., Any], ctx: HostContext) -> Callable[..., Any]:
    """Run an ``async def`` host function on the calling event loop and wait for it."""

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        loop = ctx.loop
        # The loop of an earlier `await spirit.call` may be closed or stopped by now:
        # scheduling on it would fail, or wait forever for a loop that no longer runs.
        if loop is None or loop.is_closed() or not loop.is_running():
            raise VudoError(
                f"async host function {fn.__name__} needs an event loop: call the Spirit with "
                "`await spirit.call(...)` (it then runs on a worker thread)"
            )
        if running_loop() is loop:
            raise VudoError(
                f"async host function {fn.__name__} was called on the event loop thread; "
                "the Spirit must be called with `await spirit.call(...)`, not call_sync"
            )
        address = ctx.address
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


HostEntry: TypeAlias = "Callable[..., Any] | HostFunction | Sequence[HostFunction]"


def variants(entry: Any) -> list[HostFunction]:
    if isinstance(entry, HostFunction):
        return [entry]
    if isinstance(entry, list | tuple):
        return [e if isinstance(e, HostFunction) else HostFunction(e) for e in entry]
    if callable(entry):
        return [HostFunction(entry)]
    raise TypeError(f"a Loa must provide callables or HostFunctions, not {type(entry).__name__}")


@attrs.frozen(kw_only=True, cache_hash=True)  # hashed on every grant lookup
class Loa:
    """A named, versioned service: ``provides(ctx)`` returns its host functions by name.

    ``capabilities`` names the functions a Spirit may import from it; whatever else
    ``provides`` returns stays private to the host. A Loa that lists none offers all it
    provides.
    """

    name: str = attrs.field()
    version: str = "1.0.0"
    capabilities: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
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


def _no_spirit() -> None:
    return None


class HostContext:
    """What a Loa's host functions see of the calling Spirit: one per instance and user.

    It refers to its Spirit weakly and to no linking state, so a Spirit and its host side
    form no reference cycle and are freed as soon as the Spirit is dropped.
    """

    def __init__(
        self,
        name: str,
        *,
        stdout: Any = None,
        on_effect: Callable[..., Any] | None = None,
        seance: Any = None,
    ) -> None:
        self._name = name
        self._stdout = stdout
        self._on_effect = on_effect
        self._seance = seance
        self._spirit: Callable[[], Spirit | None] = _no_spirit
        #: The context address of the Store the instance lives in (0 before it has one).
        self.address = 0
        #: The event loop of the awaited call running now (async host functions run there).
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self, spirit: Spirit | None) -> None:
        self._spirit = _no_spirit if spirit is None else weakref.ref(spirit)

    @property
    def spirit(self) -> Spirit:
        spirit = self._spirit()
        if spirit is None:
            raise VudoError("the Spirit is not ready yet (host call from its start function)")
        return spirit

    @property
    def spirit_name(self) -> str:
        return self._name

    @property
    def seance(self) -> Any:
        return self._seance

    @property
    def memory(self) -> MemoryManager:
        memory = self.spirit.memory
        if memory is None:
            raise NoMemoryError(
                f"Spirit {self.spirit_name!r} exports no memory, so its host functions cannot "
                "exchange strings or bytes; export memory 0 as 'memory'"
            )
        return memory

    @property
    def stdout(self) -> Any:
        return self._stdout

    @property
    def time_left(self) -> float | None:
        """Seconds before the running call's ``timeout=`` deadline (None: it has none). A
        host function that waits must not wait longer: the guest cannot be interrupted
        while the host runs."""
        return time_left(self.address)

    @property
    def on_effect(self) -> Callable[..., Any] | None:
        return self._on_effect

    def read_str(self, ptr: int, length: int) -> str:
        """A raw UTF-8 ``(ptr, len)`` range from the guest (bounds-checked)."""
        return self.memory.read_str(ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)

    def read_bytes(self, ptr: int, length: int) -> bytes:
        return self.memory.read_bytes(ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)

    def write_string(self, s: str) -> int:
        """Write ``s`` as a DOL length-prefixed string; returns its pointer."""
        return self.memory.write_string(s)
